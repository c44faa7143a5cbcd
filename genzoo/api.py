"""The Python API, mirroring the CLI: ``create()``, ``train()``, ``load()``."""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from genzoo.checkpoint import (WEIGHTS, RunDir, checkpoint_name, checkpoint_step,
                               complete_checkpoints, latest_checkpoint, load_tensors,
                               read_checkpoint, tensor_metadata)
from genzoo.config import TrainConfig, from_dict, is_whole, resolve, to_dict
from genzoo.errors import (CheckpointError, ConfigError, DataError, LookupFailed,
                           did_you_mean)
from genzoo.progress import Reporter
from genzoo.protocols import DataInfo, Generator, History
from genzoo.registry import ModelSpec, get_registry


@dataclass
class Plan:
    """Everything a run needs, validated before any framework is imported."""

    spec: ModelSpec
    preset: str
    model_config: Any
    train_config: TrainConfig
    data: str

    def to_json(self) -> dict[str, Any]:
        return {"model": self.spec.name, "backend": self.spec.backend, "preset": self.preset,
                "dataset": self.data, "model_config": to_dict(self.model_config),
                "train_config": to_dict(self.train_config)}


def plan(name: str, backend: str | None = None, preset: str | None = None, *,
         data: str | None = None, **overrides: Any) -> Plan:
    """Resolve a model, preset, dataset name and overrides into validated configs.

    ``backend=None`` picks torch when the model has it, else its only backend.
    """
    registry = get_registry()
    if not isinstance(name, str):
        raise LookupFailed(f"a model name is a string such as 'vae', not {name!r}")
    for what, value in (("backend", backend), ("preset", preset), ("data", data)):
        if isinstance(value, str) and not value.strip():
            raise ConfigError(f"{what} is empty; leave it out for the default")
    if backend is None and name in registry.model_names():
        available = registry.backends_of(name)
        backend = "torch" if "torch" in available else available[0]
    spec = registry.model(name, backend or "torch")
    model_cfg: Any
    model_cfg, train_cfg = resolve(spec.config, spec.preset(preset), overrides)
    if train_cfg.weight_decay and train_cfg.optimizer != "adamw":
        # torch's Adam would add an L2 term, Keras's decays decoupled: only AdamW is one thing
        raise ConfigError("weight_decay needs optimizer=adamw (decoupled decay, the same in "
                          "both backends)")
    if spec.backend == "keras" and train_cfg.precision == "bf16":
        raise ConfigError("precision=bf16 is supported by the torch backend; Keras models "
                          "train in fp32 here")
    data = data or spec.default_dataset
    if data in registry.datasets:
        if registry.datasets[data].kind != spec.kind:
            raise DataError(f"dataset '{data}' holds {registry.datasets[data].kind}s, but "
                            f"{spec.name} needs {spec.kind}s")
    elif not Path(data).expanduser().exists():
        raise LookupFailed(f"unknown dataset '{data}' (not a registered name or an existing "
                           f"path).{did_you_mean(data, registry.datasets)}")
    else:
        from genzoo.data import dataset_ref

        data = dataset_ref(data)  # absolute: the run finds it from any folder
    return Plan(spec, preset or spec.default_preset, model_cfg, train_cfg, data)


def length_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``epochs`` without ``steps`` replaces a preset's (or a resumed run's) step count,
    as ``--epochs`` does on the command line (a preset's ``steps`` would win otherwise).
    Both at once are refused: they are two ways to say how long to train."""
    def given(value: Any) -> bool:
        return value is not None and str(value).lower() not in ("none", "null")

    epochs, steps = overrides.get("epochs"), overrides.get("steps")
    if given(epochs) and given(steps):
        raise ConfigError("give epochs or steps, not both (--epochs N or --steps N)")
    if given(epochs) and steps is None:
        return {**overrides, "steps": "none"}
    return dict(overrides)


def _build(p: Plan, info: DataInfo) -> Generator:
    from genzoo.backends import get_backend

    return get_backend(p.spec.backend).build(
        p.spec, p.model_config, info, seed=p.train_config.seed, device=p.train_config.device)


def create(name: str, backend: str | None = None, preset: str | None = None, *,
           data: str | None = None, **overrides: Any) -> Generator:
    """Build an untrained model.

    Args:
        name: a model name from ``genzoo list``.
        backend: ``"torch"`` or ``"keras"``; ``None`` for torch, or the model's only backend.
        preset: a preset name; ``None`` for the model's default.
        data: the dataset (name or path) the model is shaped for; default: the model's.
        **overrides: model or training config fields; ``None`` values are ignored.

    Examples:
        >>> import genzoo
        >>> vae = genzoo.create("vae", preset="tiny")
        >>> vae.sample(4, seed=0).shape
        (4, 8, 8, 1)
    """
    p = plan(name, backend, preset, data=data, **overrides)
    return _build(p, _data_info(p))


def _data_info(p: Plan) -> DataInfo:
    registry = get_registry()
    shape = registry.datasets[p.data].shape if p.data in registry.datasets else None
    if shape is not None:
        return DataInfo("image", shape)
    from genzoo.data import load_dataset

    return load_dataset(p.data, p.spec.kind).info


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


def default_out(name: str, backend: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{name}-{backend}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{name}-{backend}-{stamp}-{n}"
    return path


def train(name: str, backend: str | None = None, preset: str | None = None, *,
          data: str | None = None, out: str | Path | None = None, overwrite: bool = False,
          reporter: Reporter | None = None, **overrides: Any) -> Run:
    """Train a model and write its run directory.

    Args:
        name: a model name from ``genzoo list``.
        backend: ``"torch"`` or ``"keras"``; ``None`` for torch, or the model's only backend.
        preset: a preset name; ``None`` for the model's default.
        data: a dataset name or path; default: the model's default dataset.
        out: the run directory; default ``runs/<model>-<backend>-<UTC time>``.
        overwrite: replace a run already in ``out``.
        reporter: progress output; default silent. ``genzoo.progress.PlainReporter()``
            prints log lines (in a notebook too), ``make_reporter()`` a bar on a terminal.
        **overrides: model or training config fields; ``None`` values are ignored.
            ``epochs`` alone replaces the preset's ``steps``, as ``--epochs`` does.

    Examples:
        >>> import genzoo
        >>> run = genzoo.train("vae", preset="tiny", out="runs/tiny")  # doctest: +SKIP
        >>> sorted(run.metrics["test"])  # doctest: +SKIP
        ['kl', 'loss', 'recon']
    """
    from genzoo import distributed

    if isinstance(out, str) and not out.strip():
        raise ConfigError("out is empty; give a folder for the run")
    p = plan(name, backend, preset, data=data, **length_overrides(overrides))
    distributed.init_from_env()  # under torchrun: join the process group
    out = distributed.broadcast_object(out if out is not None
                                       else default_out(name, p.spec.backend))
    run_dir = RunDir(out)
    created = not run_dir.path.exists()
    from genzoo.session import Session

    try:
        if distributed.world().is_main:
            run_dir.prepare(overwrite=overwrite)
        distributed.barrier()
        return Session(p, run_dir, reporter or Reporter()).run()
    except BaseException:
        if distributed.world().is_main:  # failed before writing anything: leave no trace
            run_dir.remove_if_empty(folder=created)
        raise
    finally:
        run_dir.lock.release()


def resume(run: str | Path, *, reporter: Reporter | None = None, allow_changes: bool = False,
           **overrides: Any) -> Run:
    """Continue a run from its latest checkpoint.

    Args:
        run: the run directory.
        reporter: progress output; default silent.
        allow_changes: accept overrides that change the saved config (they are saved);
            without it they are refused, naming the keys.
        **overrides: model or training config fields, e.g. ``steps=20000`` (with
            ``allow_changes=True``: it changes the config) to train a run further.

    Examples:
        >>> import genzoo
        >>> run = genzoo.resume("runs/tiny", steps=60, allow_changes=True)  # doctest: +SKIP
    """
    from genzoo import distributed

    run_dir = RunDir(run)
    p = resume_plan(run_dir.path, allow_changes=allow_changes, **length_overrides(overrides))
    moved = keras_backend_change(run_dir, p.spec)
    if moved and not allow_changes:
        raise ConfigError(f"{moved}; resuming there would not continue the run exactly. Set "
                          "KERAS_BACKEND back, or pass --allow-changes (allow_changes=True)")
    distributed.init_from_env()
    from genzoo.session import Session

    if distributed.world().is_main:
        run_dir.lock.acquire()  # refuses a run another process is training
    try:
        return Session(p, run_dir, reporter or Reporter(), resume=True).run()
    finally:
        run_dir.lock.release()


def resume_plan(run: str | Path, *, allow_changes: bool = False, **overrides: Any) -> Plan:
    """The plan a resumed run continues with: its saved config, with ``overrides``.

    Overrides that change the saved config are refused, naming the keys, unless
    ``allow_changes`` is true.
    """
    from genzoo.data import recorded_dataset

    run_dir = RunDir(run)
    saved = run_dir.read_config()
    saved["dataset"] = recorded_dataset(saved["dataset"], run_dir.path)
    p = plan(saved["model"], saved["backend"], saved["preset"], data=saved["dataset"],
             **{**saved["model_config"], **saved["train_config"]})
    if not overrides:
        return p
    changed = plan(saved["model"], saved["backend"], saved["preset"], data=saved["dataset"],
                   **{**saved["model_config"], **saved["train_config"], **overrides})
    differ = _differences(p.to_json(), changed.to_json())
    if differ and not allow_changes:
        raise ConfigError(
            f"cannot resume {run_dir.path} with a changed config ({', '.join(differ)}); "
            "pass --allow-changes (allow_changes=True) to resume anyway"
        )
    return changed


def finished_error(run: Path, step: int, total: int) -> CheckpointError:
    """The refusal to resume a run that has trained all its steps."""
    return CheckpointError(
        f"{run} has already trained {step} of its {total} steps; to train further, resume "
        "with a larger --steps and --allow-changes (steps=N, allow_changes=True)")


def finished_before_start(run_dir: RunDir, p: Plan) -> CheckpointError | None:
    """For a complete run that ``p`` would not train further, the refusal, by the rule
    resuming applies (meta.json says complete, and a checkpoint holds every step), read
    without the data or a framework, so that a launcher can refuse once, early.

    ``None`` when that cannot be told so: a run measured in epochs whose batch or model
    config changes has another number of steps per epoch (the session counts them)."""
    meta = run_dir.meta() or {}
    step, epoch = meta.get("step"), meta.get("epoch")
    candidates = complete_checkpoints(run_dir.checkpoints)
    if (meta.get("status") != "complete" or not candidates or not is_whole(step, 1)
            or not isinstance(epoch, (int, float)) or not epoch > 0):
        return None
    cfg, saved = p.train_config, resume_plan(run_dir.path)
    if cfg.steps is None and (saved.train_config.batch_size != cfg.batch_size
                              or saved.model_config != p.model_config):
        return None
    newest = checkpoint_step(candidates[0])
    total = cfg.total_steps(round(int(step or 0) / epoch))  # meta's steps per epoch
    return finished_error(run_dir.path, newest, total) if newest >= total else None


def keras_backend_change(run_dir: RunDir, spec: ModelSpec) -> str | None:
    """For a Keras run, what changed if Keras would now run on another backend than the
    one the run was trained on (its random streams and numerics differ); else ``None``."""
    if spec.backend != "keras":
        return None
    from genzoo.backends import keras_backend_name

    trained = ((run_dir.meta() or {}).get("frameworks") or {}).get("keras_backend")
    now = keras_backend_name()
    if trained is None or trained == now:
        return None
    return (f"{run_dir.path} was trained with Keras on {trained}, and Keras now runs on "
            f"{now} (KERAS_BACKEND)")


def weights_metadata(spec: ModelSpec) -> dict[str, str]:
    """The header written into every ``model.safetensors``: what the weights belong to."""
    from genzoo import __version__

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


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    keys = []
    for section in ("model_config", "train_config"):
        for k in sorted(set(a[section]) | set(b[section])):
            if a[section].get(k) != b[section].get(k) and k != "device":
                keys.append(f"{k}: {a[section].get(k)} -> {b[section].get(k)}")
    return keys


def saved_spec(run_dir: RunDir) -> tuple[dict[str, Any], ModelSpec]:
    """A run's config.json and the spec of its model, which must make what the config's
    ``data_info`` describes (a hand-edited config could say otherwise)."""
    saved = run_dir.read_config()
    spec = get_registry().model(saved["model"], saved["backend"])
    if saved["data_info"]["kind"] != spec.kind:
        raise CheckpointError(f"{run_dir.path / RunDir.CONFIG} is damaged: {spec.name} makes "
                              f"{spec.kind}s, but its data_info says {saved['data_info']['kind']}")
    return saved, spec


def load(run: str | Path, *, device: str = "auto",
         checkpoint: str | int | None = None) -> Generator:
    """Reload a trained model from a run directory (no dataset needed).

    Image models sample with ``sample(n, seed=...)`` (float32 NHWC in [0, 1]) and, when
    they have a latent space, ``interpolate(seed_a, seed_b, steps)``; text models also
    ``generate(prompt, max_new_tokens=..., temperature=..., top_k=..., seed=...)`` and
    ``stream(...)`` (see ``TextGenerator``).

    Args:
        run: the run directory written by ``train()`` or ``genzoo train``.
        device: where to put a torch model.
        checkpoint: instead of the final ``model.safetensors``, a periodic checkpoint:
            ``"latest"``, a step (``1000``) or a checkpoint's name (``"step-00001000"``).

    Examples:
        >>> import genzoo
        >>> model = genzoo.load("runs/vae-torch-20260101-000000")  # doctest: +SKIP
        >>> images = model.sample(16, seed=0)  # doctest: +SKIP
    """
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
                      "did there", stacklevel=2)
    info = DataInfo.from_json(saved["data_info"])
    p = Plan(spec, saved["preset"], model_cfg, train_cfg, saved["dataset"])
    generator = _build(p, info)
    if checkpoint is None:
        source = run_dir.path / WEIGHTS
        tensors = load_tensors(source)
        check_origin(tensor_metadata(source), spec, source)
    else:
        source = _checkpoint(run_dir, checkpoint)
        tensors, _, _ = read_checkpoint(source)
    try:
        generator.load_state(tensors)
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    return generator


def _checkpoint(run_dir: RunDir, which: str | int) -> Path:
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


def evaluate(run: str | Path, *, data: str | None = None, k: int = 1000,
             samples: int = 10_000, reporter: Reporter | None = None) -> dict[str, Any]:
    """Evaluate a run as ``genzoo eval`` does, write ``eval.json`` and return its contents.

    Args:
        run: the run directory.
        data: another dataset (name or path) to score on; the figures then go to
            ``eval-<dataset>.json``.
        k: importance samples per test image for the likelihood bound (models that have one).
        samples: generated images for the sample-quality metrics (image models).
        reporter: progress output; default silent.

    Returns:
        ``{"model", "backend", "run", "metrics": {...}, "protocol": {...}, "wall_time_s"}``.

    Examples:
        >>> import genzoo
        >>> genzoo.evaluate("runs/tiny")["metrics"]["fd"]  # doctest: +SKIP
        849.87
    """
    from genzoo.evaluation import evaluate_run

    return evaluate_run(run, data=data, k=k, samples=samples, reporter=reporter)


def compare(runs: str | Path | Iterable[str | Path], *,
            metrics: str | Iterable[str] = ()) -> dict[str, Any]:
    """Runs side by side, as ``genzoo compare`` shows them (no framework is imported).

    Args:
        runs: run directories, or folders of runs (expanded in natural order).
        metrics: keep the metrics whose name contains this string (or any of these).

    Returns:
        ``{"runs": [...], "groups": [...]}``: each run's model, settings, status, step
        and metrics, and a mean and standard deviation for each group of complete runs
        that differ only in their seed.

    Examples:
        >>> import genzoo
        >>> result = genzoo.compare("runs/study", metrics="val_loss")  # doctest: +SKIP
        >>> result["groups"][0]["metrics"]["best val_loss"]["mean"]  # doctest: +SKIP
        1.904
    """
    from genzoo.comparison import compare as compare_runs

    return compare_runs(runs, metrics=metrics)


__all__ = ["Plan", "Run", "compare", "create", "evaluate", "load", "plan", "resume",
           "resume_plan", "train"]
