"""A run directory as a trained model: the ``Run`` record, what its weights belong to,
and reloading a model from a run (what ``genzoo.load`` does)."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genzoo.checkpoint import (WEIGHTS, checkpoint_name, complete_checkpoints,
                               latest_checkpoint, load_tensors, read_checkpoint,
                               tensor_metadata)
from genzoo.rundir import RunDir
from genzoo.config import TrainConfig, from_dict
from genzoo.ema import PREFIX as EMA_PREFIX
from genzoo.errors import CheckpointError, ConfigError
from genzoo.planning import Plan, build, keras_backend_change
from genzoo.protocols import DataInfo, Generator, History
from genzoo.registry import ModelSpec, get_registry
from genzoo.sampling import TEMPERATURE, TOP_K
from genzoo.settings import text_defaults, with_settings


@dataclass
class Run:
    """A finished training run: where it is, the model, and what it measured.

    Attributes:
        path: the run directory.
        generator: the trained model (the best-validation weights when ``keep_best``).
        history: every logged training and validation record.
        metrics: the final figures, as in ``meta.json``: ``{"train": {...}, "val":
            {...}, "test": {...}}``, and ``"best"`` (step and validation loss) when
            ``keep_best`` is set. For text models "test" is the full pass over the
            validation split (text has no separate test split).
    """

    path: Path
    generator: Generator
    history: History
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def weights_metadata(spec: ModelSpec) -> dict[str, str]:
    """The header written into every ``model.safetensors``: what the weights belong to."""
    from genzoo.version import __version__

    return {"genzoo.model": spec.name, "genzoo.backend": spec.backend,
            "genzoo.version": __version__}


def check_origin(metadata: Mapping[str, str], spec: ModelSpec, path: Path) -> None:
    """Refuse weights written for another model family or backend, naming both."""
    found = (metadata.get("genzoo.model"), metadata.get("genzoo.backend"))
    if found != (spec.name, spec.backend):
        raise CheckpointError(
            f"{path} holds weights for {found[0] or '?'} ({found[1] or '?'}), not for "
            f"{spec.name} ({spec.backend})"
        )


def saved_spec(run_dir: RunDir) -> tuple[dict[str, Any], ModelSpec]:
    """A run's config.json and the spec of its model, which must make what the config's
    ``data_info`` describes (a hand-edited config could say otherwise)."""
    saved = run_dir.read_config()
    spec = get_registry().model(saved["model"], saved["backend"])
    if saved["data_info"]["kind"] != spec.kind:
        raise CheckpointError(f"{run_dir.path / RunDir.CONFIG} is damaged: {spec.name} makes "
                              f"{spec.kind}s, but its data_info says {saved['data_info']['kind']}")
    return saved, spec


def find_checkpoint(run_dir: RunDir, which: str | int) -> Path:
    """The checkpoint folder ``load(checkpoint=which)`` names; a clear error otherwise."""
    found = complete_checkpoints(run_dir.checkpoints)
    if not found:
        raise CheckpointError(f"{run_dir.path} has no checkpoint")
    if which == "latest":
        return latest_checkpoint(run_dir.checkpoints) or found[0]
    name = checkpoint_name(int(which)) if isinstance(which, numbers.Integral) \
        and not isinstance(which, bool) else str(which)
    for path in found:
        if path.name == name:
            return path
    raise CheckpointError(f"{run_dir.path} has no checkpoint {which!r}; it has 'latest', "
                          + ", ".join(repr(p.name) for p in found))


WEIGHTS_CHOICES = ("auto", "ema", "raw")  # load(weights=...), --weights
CHECKPOINT_EMA = "callback.ema."  # a checkpoint's moving average, among its trainer tensors


def choose_weights(tensors: Mapping[str, np.ndarray], which: str,
                   path: Path) -> tuple[dict[str, np.ndarray], str]:
    """The weights to load from the tensors of a weights file, and which they are.

    A run trained with ``ema_decay`` saves the trained tensors under their names and
    the moving average of each floating-point one as ``ema.<name>``. ``which`` is
    ``"raw"`` (the trained tensors), ``"ema"`` (the trained tensors, each averaged one
    replaced by its average) or ``"auto"`` (``"ema"`` when ``tensors`` has an average,
    else ``"raw"``). The ``ema.`` names are never among the weights returned.

    Returns:
        ``(weights, used)``: ``used`` is ``"ema"`` or ``"raw"``.

    Raises:
        ConfigError: ``which`` is none of auto, ema, raw.
        CheckpointError: ``"ema"`` asked of tensors without an average (``path`` names
            them), or an average of a tensor they lack.
    """
    check_weights_choice(which)
    raw = {k: v for k, v in tensors.items() if not k.startswith(EMA_PREFIX)}
    average = {k[len(EMA_PREFIX):]: v for k, v in tensors.items() if k.startswith(EMA_PREFIX)}
    if which == "ema" and not average:
        raise CheckpointError(f"{path} holds no moving average of the weights (the run did "
                              "not train with ema_decay); load its raw weights (--weights "
                              "raw, weights='raw')")
    if which == "raw" or not average:
        return raw, "raw"
    stray = sorted(average.keys() - raw.keys())
    if stray:
        raise CheckpointError(f"{path} is damaged: it holds {EMA_PREFIX}{stray[0]}, the "
                              f"average of a weight it lacks")
    return {k: average.get(k, v) for k, v in raw.items()}, "ema"


def check_weights_choice(which: object) -> str:
    """``which`` if it is one of ``WEIGHTS_CHOICES``; a ``ConfigError`` otherwise."""
    if not isinstance(which, str) or which not in WEIGHTS_CHOICES:
        raise ConfigError(f"weights must be one of {', '.join(WEIGHTS_CHOICES)}, not {which!r}")
    return which


def load_run(run: str | Path, *, device: str = "auto", checkpoint: str | int | None = None,
             settings: Mapping[str, Any] | Iterable[str] | None = None,
             weights: str = "auto") -> Generator:
    """``genzoo.load``: a run's model with its final weights, or a checkpoint's."""
    return load_chosen(run, device=device, checkpoint=checkpoint, settings=settings,
                       weights=weights)[0]


def load_chosen(run: str | Path, *, device: str = "auto", checkpoint: str | int | None = None,
                settings: Mapping[str, Any] | Iterable[str] | None = None,
                weights: str = "auto") -> tuple[Generator, str]:
    """``load_run``, and which weights it loaded: ``"ema"`` or ``"raw"``
    (``choose_weights``). Everything is checked before the framework is imported."""
    check_weights_choice(weights)
    run_dir = RunDir(run)
    saved, spec = saved_spec(run_dir)
    model_cfg: Any = with_settings(from_dict(spec.config, saved["model_config"]), settings)
    train_cfg = from_dict(TrainConfig, {**saved["train_config"], "device": device})
    if checkpoint is None and not (run_dir.path / WEIGHTS).is_file():
        run_dir.record_killed()
        status = run_dir.status()
        raise CheckpointError(
            f"{run_dir.path} has no final weights yet ({status or 'no meta.json'}): it "
            f"writes {WEIGHTS} when training ends; continue it with `genzoo train "
            f"{spec.name} --resume {run_dir.path}` (or genzoo.resume)")
    if checkpoint is None:
        source = run_dir.path / WEIGHTS
        tensors = load_tensors(source)
        check_origin(tensor_metadata(source), spec, source)
    else:
        source = find_checkpoint(run_dir, checkpoint)
        tensors, trainer, _ = read_checkpoint(source)
        tensors.update({EMA_PREFIX + k[len(CHECKPOINT_EMA):]: v for k, v in trainer.items()
                        if k.startswith(CHECKPOINT_EMA)})
    chosen, used = choose_weights(tensors, weights, source)
    moved = keras_backend_change(run_dir, spec)
    if moved:
        import warnings

        warnings.warn(f"{moved}: the weights load, but a seed draws other samples than it "
                      "did there", stacklevel=4)
    info = DataInfo.from_json(saved["data_info"])
    p = Plan(spec, saved["preset"], model_cfg, train_cfg, saved["dataset"])
    generator = build(p, info)
    try:
        generator.load_state(chosen)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    _sample_with_settings(generator)
    return generator, used


def _sample_with_settings(generator: Any) -> None:
    """Make a text generator's ``generate`` and ``stream`` default to the temperature and
    top-k of its config (``text_defaults``), where those differ from genzoo's defaults;
    an argument given to either still wins."""
    import functools

    defaults = text_defaults(generator.config)
    if not callable(getattr(generator, "stream", None)) \
            or defaults == {"temperature": TEMPERATURE, "top_k": TOP_K}:
        return
    for name in ("stream", "generate"):
        method = getattr(generator, name)
        setattr(generator, name, functools.update_wrapper(
            functools.partial(method, **defaults), method))
