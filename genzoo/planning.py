"""Planning a run: a model, preset, dataset and overrides resolved into validated
configs (a ``Plan``) before any framework is imported, and the rules a resume follows.

The Python API (``genzoo.api``) and the CLI call these; the session trains a plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from genzoo.checkpoint import checkpoint_step, complete_checkpoints
from genzoo.rundir import RunDir
from genzoo.config import TrainConfig, is_whole, resolve, to_dict
from genzoo.errors import CheckpointError, ConfigError, DataError, LookupFailed, did_you_mean
from genzoo.protocols import DataInfo, Generator
from genzoo.registry import ModelSpec, get_registry
from genzoo.conditioning import check_labelled, is_conditional


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


def build(p: Plan, info: DataInfo) -> Generator:
    from genzoo.backends import get_backend

    return get_backend(p.spec.backend).build(
        p.spec, p.model_config, info, seed=p.train_config.seed, device=p.train_config.device)


def data_info(p: Plan) -> DataInfo:
    """What the plan's model is built for, from the dataset's spec where it says enough
    (without loading the data), else from the data (``model_info``)."""
    registry = get_registry()
    spec = registry.datasets.get(p.data)
    if spec is not None and spec.shape is not None and (
            spec.classes or not is_conditional(p.model_config)):
        return model_info(p, DataInfo("image", spec.shape, classes=spec.classes))
    from genzoo.data import load_dataset

    data = load_dataset(p.data, p.spec.kind)
    if is_conditional(p.model_config):
        check_labelled(data, f"{p.spec.name} ({p.spec.backend})")
    return model_info(p, data.info)


def model_info(p: Plan, info: DataInfo) -> DataInfo:
    """``info`` as the plan's model sees it: with the class names only when the model is
    conditional (``genzoo.conditioning``), which then needs two classes at least."""
    if not is_conditional(p.model_config):
        return info.without_classes()
    if info.num_classes < 2:
        raise DataError(f"{p.spec.name} ({p.spec.backend}) is conditional, but dataset "
                        f"'{p.data}' has {'no class labels' if not info.num_classes else 'one class'}"
                        "; train it on a labelled dataset, or without conditional=true")
    return info


def default_out(name: str, backend: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{name}-{backend}-{stamp}"
    n = 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{name}-{backend}-{stamp}-{n}"
    return path


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


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    keys = []
    for section in ("model_config", "train_config"):
        for k in sorted(set(a[section]) | set(b[section])):
            if a[section].get(k) != b[section].get(k) and k != "device":
                keys.append(f"{k}: {a[section].get(k)} -> {b[section].get(k)}")
    return keys


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
