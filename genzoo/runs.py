"""A run directory as a trained model: the ``Run`` record, what its weights belong to,
and reloading a model from a run (what ``genzoo.load`` does)."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genzoo.checkpoint import (WEIGHTS, checkpoint_name, complete_checkpoints,
                               latest_checkpoint, load_tensors, read_checkpoint,
                               tensor_metadata)
from genzoo.rundir import RunDir
from genzoo.config import TrainConfig, from_dict
from genzoo.errors import CheckpointError
from genzoo.planning import Plan, build, keras_backend_change
from genzoo.protocols import DataInfo, Generator, History
from genzoo.registry import ModelSpec, get_registry


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


def load_run(run: str | Path, *, device: str = "auto",
             checkpoint: str | int | None = None) -> Generator:
    """``genzoo.load``: a run's model with its final weights, or a checkpoint's."""
    run_dir = RunDir(run)
    saved, spec = saved_spec(run_dir)
    model_cfg: Any = from_dict(spec.config, saved["model_config"])
    train_cfg = from_dict(TrainConfig, {**saved["train_config"], "device": device})
    if checkpoint is None and not (run_dir.path / WEIGHTS).is_file():
        run_dir.record_killed()
        status = run_dir.status()
        raise CheckpointError(
            f"{run_dir.path} has no final weights yet ({status or 'no meta.json'}): it "
            f"writes {WEIGHTS} when training ends; continue it with `genzoo train "
            f"{spec.name} --resume {run_dir.path}` (or genzoo.resume)")
    moved = keras_backend_change(run_dir, spec)
    if moved:
        import warnings

        warnings.warn(f"{moved}: the weights load, but a seed draws other samples than it "
                      "did there", stacklevel=3)
    info = DataInfo.from_json(saved["data_info"])
    p = Plan(spec, saved["preset"], model_cfg, train_cfg, saved["dataset"])
    generator = build(p, info)
    if checkpoint is None:
        source = run_dir.path / WEIGHTS
        tensors = load_tensors(source)
        check_origin(tensor_metadata(source), spec, source)
    else:
        source = find_checkpoint(run_dir, checkpoint)
        tensors, _, _ = read_checkpoint(source)
    try:
        generator.load_state(tensors)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    return generator
