"""The Python API, mirroring the CLI: ``create()``, ``train()``, ``resume()``, ``load()``,
``evaluate()``, ``compare()``.

A thin facade: planning lives in ``genzoo.planning``, training in ``genzoo.session``,
reloading in ``genzoo.runs``, evaluation in ``genzoo.evaluation``. ``plan``,
``resume_plan``, ``length_overrides``, ``finished_before_start`` and ``default_out`` are
importable from here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from genzoo.callbacks import Callback
from genzoo.rundir import RunDir
from genzoo.errors import ConfigError
from genzoo.planning import (Plan, build, data_info, default_out, finished_before_start,
                             keras_backend_change, length_overrides, plan, resume_plan)
from genzoo.progress import Reporter
from genzoo.protocols import Generator
from genzoo.runs import Run, load_run


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
    return build(p, data_info(p))


def train(name: str, backend: str | None = None, preset: str | None = None, *,
          data: str | None = None, out: str | Path | None = None, overwrite: bool = False,
          reporter: Reporter | None = None, callbacks: Sequence[Callback | str] = (),
          **overrides: Any) -> Run:
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
        callbacks: ``genzoo.callbacks.Callback`` objects, or import paths of them
            (``"package.module:Name"``, as ``--callback`` takes them; these are saved in
            the run, and ``resume`` makes them again).
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
    made, paths = _callbacks(callbacks)
    from genzoo.session import Session

    try:
        if distributed.world().is_main:
            run_dir.prepare(overwrite=overwrite)
        distributed.barrier()
        return Session(p, run_dir, reporter or Reporter(), callbacks=made,
                       callback_paths=paths).run()
    except BaseException:
        if distributed.world().is_main:  # failed before writing anything: leave no trace
            run_dir.remove_if_empty(folder=created)
        raise
    finally:
        run_dir.lock.release()


def resume(run: str | Path, *, reporter: Reporter | None = None, allow_changes: bool = False,
           callbacks: Sequence[Callback | str] | None = None, **overrides: Any) -> Run:
    """Continue a run from its latest checkpoint.

    Args:
        run: the run directory.
        reporter: progress output; default silent.
        callbacks: as for ``train``; ``None`` makes again those the run was started with
            by import path. A callback's saved state is restored when its key matches.
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
    if callbacks is None:
        callbacks = [str(c) for c in run_dir.read_config().get("callbacks", [])]
    made, paths = _callbacks(callbacks)
    distributed.init_from_env()
    from genzoo.session import Session

    if distributed.world().is_main:
        run_dir.lock.acquire()  # refuses a run another process is training
    try:
        return Session(p, run_dir, reporter or Reporter(), resume=True, callbacks=made,
                       callback_paths=paths).run()
    finally:
        run_dir.lock.release()


def _callbacks(given: Sequence[Callback | str]) -> tuple[list[Callback], tuple[str, ...]]:
    """Callback objects, and the import paths among them (saved for ``resume``)."""
    from genzoo.callbacks import callback_from_path

    given = [given] if isinstance(given, (str, Callback)) else list(given)
    made = [callback_from_path(c) if isinstance(c, str) else c for c in given]
    bad = [c for c in made if not isinstance(c, Callback)]
    if bad:
        raise ConfigError(f"callbacks must be genzoo.callbacks.Callback objects or import "
                          f"paths, not {type(bad[0]).__name__}")
    return made, tuple(c.strip() for c in given if isinstance(c, str))


def load(run: str | Path, *, device: str = "auto", checkpoint: str | int | None = None,
         settings: Mapping[str, Any] | None = None, weights: str = "auto") -> Generator:
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
        settings: sampling settings to change, ``{field: value}``: only the fields the
            model's config lists in ``SAMPLING`` (the Transformer's ``temperature``,
            ``top_k`` and ``sample_chars``; the VAE's and the GAN's ``temperature``), as ``genzoo sample --set`` takes them. The
            model's ``config`` holds them, and a text model's ``generate`` and ``stream``
            default to its config's ``temperature`` and ``top_k`` (``top_k=0``: none).
        weights: ``"auto"`` loads the moving average of the weights when the run kept
            one (``ema_decay``), else the trained weights; ``"ema"`` the average (an error
            when there is none); ``"raw"`` the trained weights.

    Raises:
        ConfigError: a setting that is not a sampling field (naming those that are), or
            a bad value.
        CheckpointError: ``weights="ema"`` for a run without a moving average.

    Examples:
        >>> import genzoo
        >>> model = genzoo.load("runs/vae-torch-20260101-000000")  # doctest: +SKIP
        >>> images = model.sample(16, seed=0)  # doctest: +SKIP
        >>> gpt = genzoo.load("runs/gpt", settings={"temperature": 0})  # doctest: +SKIP
        >>> greedy = gpt.generate("def ", max_new_tokens=40)  # doctest: +SKIP
    """
    return load_run(run, device=device, checkpoint=checkpoint, settings=settings,
                    weights=weights)


def evaluate(run: str | Path, *, data: str | None = None, k: int = 1000,
             samples: int = 10_000, reporter: Reporter | None = None,
             settings: Mapping[str, Any] | None = None, weights: str = "auto") -> dict[str, Any]:
    """Evaluate a run as ``genzoo eval`` does, write ``eval.json`` and return its contents.

    Args:
        run: the run directory.
        data: another dataset (name or path) to score on; the figures then go to
            ``eval-<dataset>.json``.
        k: importance samples per test image for the likelihood bound (models that have one).
        samples: generated images for the sample-quality metrics (image models).
        reporter: progress output; default silent.
        settings: sampling settings to change, as for ``load``.
        weights: ``"auto"``, ``"ema"`` or ``"raw"``, as for ``load``.

    Returns:
        ``{"model", "backend", "run", "settings", "weights", "metrics": {...},
        "protocol": {...}, "wall_time_s"}``: ``settings`` holds the value of every
        sampling field the model was evaluated with, ``weights`` which weights it loaded
        (``"ema"`` or ``"raw"``).

    Examples:
        >>> import genzoo
        >>> genzoo.evaluate("runs/tiny")["metrics"]["fd"]  # doctest: +SKIP
        849.87
    """
    from genzoo.evaluation import evaluate_run

    return evaluate_run(run, data=data, k=k, samples=samples, reporter=reporter,
                        settings=settings, weights=weights)


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


__all__ = ["Plan", "Run", "compare", "create", "default_out", "evaluate",
           "finished_before_start", "length_overrides", "load", "plan", "resume",
           "resume_plan", "train"]
