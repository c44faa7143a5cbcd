"""``genzoo compare``: trained runs side by side, read from their JSON files.

Nothing is loaded or recomputed, so no framework is imported: comparing a dozen runs
takes a fraction of a second. The figures are the ones each run recorded: its best
validation loss (``meta.json``), its test metrics at the end of training (``meta.json``)
and, where ``genzoo eval`` was run, the evaluation's metrics (``eval.json``).
"""

from __future__ import annotations

import math
import re
import statistics
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from genzoo.checkpoint import read_json
from genzoo.rundir import RunDir
from genzoo.config import is_whole
from genzoo.errors import CheckpointError, ConfigError, GenzooError

# Metrics of generated images, which depend on how many were drawn (``--samples``): the
# Fréchet distance in particular is biased upward for small counts.
SAMPLE_METRICS = ("eval fd", "eval is", "eval is_std", "eval precision", "eval recall")


class SampleCountsDiffer(GenzooError):
    """Runs evaluated with different numbers of generated images were compared on the
    metrics of those images."""


def find_runs(paths: Iterable[Path | str]) -> list[Path]:
    """Each path that is a run, and the runs directly inside each path that is not
    (in natural order: ``seed-2`` before ``seed-10``); a run named twice counts once.

    Examples:
        >>> find_runs([])
        []
    """
    found: dict[Path, Path] = {}  # each run once, however often it is named
    for path in (Path(p).expanduser() for p in paths):
        if RunDir(path).holds_run():
            found.setdefault(path.resolve(), path)
            continue
        if not path.exists():
            raise CheckpointError(f"{path} does not exist")
        inside = sorted((p for p in path.iterdir() if RunDir(p).holds_run()),
                        key=lambda p: _natural(p.name)) if path.is_dir() else []
        if not inside:
            raise CheckpointError(f"{path} is not a genzoo run and holds none "
                                  "(no config.json in it or in its subfolders)")
        for run in inside:
            found.setdefault(run.resolve(), run)
    return list(found.values())


def _natural(name: str) -> list[Any]:
    """A sort key that orders digit runs by value.

    Examples:
        >>> sorted(["s-10", "s-9", "b"], key=_natural)
        ['b', 's-9', 's-10']
    """
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", name) if part]


def describe(path: Path) -> dict[str, Any]:
    """One run's identity, settings, progress and recorded metrics."""
    run = RunDir(path)
    config = run.read_config()
    meta_path, eval_path = path / RunDir.META, path / "eval.json"
    meta = read_json(meta_path) if meta_path.is_file() else {}
    meta = meta if isinstance(meta, dict) else {}  # a damaged meta.json shows as "started"
    recorded: dict[str, Any] = meta["metrics"] if isinstance(meta.get("metrics"), dict) else {}
    metrics: dict[str, Any] = {}
    if isinstance(recorded.get("best"), dict):
        metrics["best val_loss"] = recorded["best"].get("val_loss")
    if isinstance(recorded.get("test"), dict):
        metrics.update({f"test {k}": v for k, v in recorded["test"].items()})
    samples = None
    if eval_path.is_file():
        evaluated = read_json(eval_path)
        metrics.update({f"eval {k}": v for k, v in evaluated["metrics"].items()})
        protocol = evaluated.get("protocol")
        samples = _whole(protocol.get("generated_images")) if isinstance(protocol, dict) else None
    train = config["train_config"]
    framework = (meta.get("frameworks") or {}).get("keras_backend")  # Keras: TF or torch
    status = run.status(meta) or "started"
    step, wall = _whole(meta.get("step")) or 0, _real(meta.get("wall_time_s"))
    if status != "complete":  # meta.json is from the start; the log tells how far it got
        last: dict[str, Any] = next(
            (e for e in reversed(run.events()) if e.get("event") == "train"), {})
        if (_whole(last.get("step")) or 0) > step:
            step, wall = last["step"], _real(last.get("time")) or wall
    return {"run": str(path), "model": config["model"],
            "backend": config["backend"] + (f" on {framework}" if framework else ""),
            "preset": config.get("preset"), "data": config["dataset"], "seed": train["seed"],
            "settings": {**config["model_config"], **train},
            "status": status, "step": step,
            "num_parameters": _whole(meta.get("num_parameters")), "wall_time_s": wall,
            "eval_samples": samples,
            "metrics": {k: float(v) for k, v in metrics.items() if _real(v) is not None}}


def _whole(value: Any) -> int | None:
    return value if is_whole(value) else None


def _real(value: Any) -> float | None:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def differences(runs: list[dict[str, Any]]) -> list[str]:
    """The settings every run has but not all with the same value (the seed aside).

    Examples:
        >>> differences([{"settings": {"seed": 0, "lr": 1, "bias": True}},
        ...              {"settings": {"seed": 1, "lr": 1, "bias": False}}])
        ['bias']
    """
    shared = set.intersection(*(set(r["settings"]) for r in runs)) if runs else set()
    return sorted(k for k in shared - {"seed"}
                  if len({repr(r["settings"][k]) for r in runs}) > 1)


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean, sample standard deviation and count of each metric over the runs having a
    finite value of it.

    Examples:
        >>> rows = [{"metrics": {"loss": 1.0}}, {"metrics": {"loss": 3.0}}, {"metrics": {}},
        ...         {"metrics": {"loss": float("nan")}}]
        >>> summarise(rows)
        {'loss': {'mean': 2.0, 'sd': 1.4142135623730951, 'n': 2}}
    """
    names = list(dict.fromkeys(k for r in runs for k in r["metrics"]))
    summary = {}
    for name in names:
        values = [r["metrics"][name] for r in runs
                  if name in r["metrics"] and math.isfinite(r["metrics"][name])]
        if values:
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[name] = {"mean": statistics.fmean(values), "sd": sd, "n": len(values)}
    return summary


def compare(paths: Path | str | Iterable[Path | str],
            metrics: str | Iterable[str] = ()) -> dict[str, Any]:
    """The runs at ``paths`` (folders of runs are expanded), the settings in which each
    differs from the other runs of its model, and a summary of each group of complete
    runs that differ only in their seed.

    ``paths``: one path, or several. ``metrics``: keep only the metrics whose name
    contains this string, or one of these strings. A run found inside a folder whose
    files cannot be read is left out with a warning; a run named itself must be readable.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else paths
    metrics = [metrics] if isinstance(metrics, str) else metrics or ()
    paths = list(paths) if isinstance(paths, Iterable) else paths  # a generator: read once
    if paths is None or not all(isinstance(p, (str, Path)) for p in paths):
        raise ConfigError(f"compare needs run paths, not {paths!r}")
    named = {Path(p).expanduser().resolve() for p in paths}
    runs = []
    found = find_runs(paths)
    for path in found:
        try:
            runs.append(describe(path))
        except (CheckpointError, KeyError, TypeError, AttributeError) as exc:
            problem = (str(exc) if isinstance(exc, CheckpointError) else
                       f"{path} holds a run whose JSON files genzoo cannot read "
                       f"(missing or malformed: {exc})")
            if path.resolve() in named:  # a run named on its own must be readable
                raise CheckpointError(problem) from None
            warnings.warn(f"{problem}; left out", stacklevel=2)  # one of a folder's runs
    if found and not runs:
        raise CheckpointError("none of the runs in "
                              f"{', '.join(str(p) for p in paths)} can be read")
    wanted = tuple(metrics)
    if wanted:
        names = sorted({k for r in runs for k in r["metrics"]})
        if not any(w in k for w in wanted for k in names):
            raise ConfigError(f"no metric name contains {' or '.join(map(repr, wanted))}; "
                              f"these runs have: {', '.join(names) or 'none'}")
        for r in runs:
            r["metrics"] = {k: v for k, v in r["metrics"].items() if any(w in k for w in wanted)}
    _check_sample_counts(runs)
    by_model: dict[str, list[dict[str, Any]]] = {}  # settings are per model, any backend
    for r in runs:
        by_model.setdefault(r["model"], []).append(r)
    for same in by_model.values():
        differ = differences(same)
        for r in same:
            r["differs"] = {k: r["settings"][k] for k in differ}
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        if r["status"] == "complete":  # unfinished runs are listed but not averaged
            key = repr([r[k] for k in ("model", "backend", "preset", "data", "differs")])
            groups.setdefault(key, []).append(r)
    summary = [{"model": g[0]["model"], "backend": g[0]["backend"], "preset": g[0]["preset"],
                "data": g[0]["data"], "differs": g[0]["differs"], "runs": len(g),
                "metrics": summarise(g)} for g in groups.values()
               if len({r["seed"] for r in g}) == len(g)]  # repeats of one seed are no spread
    return _finite({"runs": runs, "groups": summary})


def _check_sample_counts(runs: list[dict[str, Any]]) -> None:
    """Refuse runs whose sample-quality metrics (``SAMPLE_METRICS``) were measured on
    different numbers of generated images: such figures are not comparable."""
    by_count: dict[int, list[str]] = {}
    for r in runs:
        if r["eval_samples"] is not None and any(m in r["metrics"] for m in SAMPLE_METRICS):
            by_count.setdefault(r["eval_samples"], []).append(Path(r["run"]).name)
    if len(by_count) > 1:
        counts = "; ".join(f"{', '.join(names)}: {count:,} images"
                           for count, names in sorted(by_count.items()))
        raise SampleCountsDiffer(
            "cannot compare Fréchet distance, IS, precision and recall of runs evaluated "
            f"with different numbers of generated images ({counts}); evaluate them with the "
            "same --samples, or keep other metrics with --metric")


def _finite(obj: Any) -> Any:
    """NaN and infinities as ``None``, so that ``--json`` prints strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Columns and rows for the terminal: one row per run, then a mean ± sd row for each
    group of two or more runs that differ only in their seed."""
    runs = result["runs"]
    names = list(dict.fromkeys(k for r in runs for k in r["metrics"]))
    columns = ["run", "model", "preset", "data", "seed", "steps", "time"]
    differ = any(r["differs"] for r in runs)
    columns += ["settings"] * differ + names
    rows = []
    for r in runs:
        step = f"{r['step']:,}" + ("" if r["status"] == "complete" else f" ({r['status']})")
        wall = r["wall_time_s"]
        rows.append([Path(r["run"]).name, f"{r['model']} ({r['backend']})", r["preset"] or "",
                     r["data"], str(r["seed"]), step, "" if wall is None else f"{wall:.0f} s",
                     *[_settings(r["differs"])] * differ,
                     *(_number(r["metrics"][n]) if n in r["metrics"] else "–"
                       for n in names)])
    for g in result["groups"]:
        if g["runs"] < 2:
            continue
        stats = g["metrics"]
        rows.append([f"mean ± sd ({g['runs']})", f"{g['model']} ({g['backend']})",
                     g["preset"] or "", g["data"], "", "", "",
                     *[_settings(g["differs"])] * differ,
                     *(f"{_number(stats[n]['mean'])} ± {_number(stats[n]['sd'])}"
                       if n in stats and stats[n]["n"] > 1 else "" for n in names)])
    return columns, rows


def _settings(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={_value(v)}" for k, v in values.items())


def _value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _number(value: float | None) -> str:
    if value is None:
        return "nan"  # not a finite value (a diverged run)
    return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4f}"
