"""One training run from a validated plan to a finished run directory.

The order matters: the dataset is loaded and the run directory checked before the
framework is imported, so bad input fails in a second, not after TensorFlow loads.
"""

from __future__ import annotations

import time
from functools import lru_cache
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from genzoo.version import __version__
from genzoo.planning import Plan, model_info
from genzoo.runs import Run, weights_metadata
from genzoo.settings import text_defaults
from genzoo.stopping import StopRequests
from genzoo.checkpoint import (WEIGHTS, atomic_write_bytes, load_tensors, save_tensors,
                               write_checkpoint)
from genzoo.rundir import RunDir
from genzoo.resuming import Resuming
from genzoo.conditioning import check_labelled, class_rows, is_conditional, one_hot
from genzoo.distributed import Sharded, world
from genzoo.errors import DataError, Terminated, one_line
from genzoo.callbacks import (Callback, ProgressCallback, TrainingContext, restore_state,
                              split_state)
from genzoo.ema import EMA, PREFIX as EMA_PREFIX, averaged, with_average
from genzoo.progress import Reporter
from genzoo.protocols import History
from genzoo.training import Diverged, Interrupted, evaluate, fit

SAMPLE_COUNT = 64  # images in samples.png
CLASS_ROW = 8  # a conditional model's samples.png: this many images of each class
TEXT_SAMPLE_CHARS = 500  # characters in samples.txt, unless the model config says

BEST = "best.safetensors"


class Session(Resuming):
    """Loads data, builds the model and trainer, runs the loop, writes the artifacts."""

    def __init__(self, plan: Plan, run_dir: RunDir, reporter: Reporter, resume: bool = False,
                 callbacks: list[Callback] | None = None,
                 callback_paths: tuple[str, ...] = ()):
        self.plan = plan
        self.user_callbacks = list(callbacks or [])
        self.callback_paths = callback_paths  # --callback: saved, so --resume remakes them
        self.saved_callbacks: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
        self.run_dir = run_dir
        self.reporter = reporter
        self.resume = resume
        self.stops = StopRequests()  # Ctrl-C and SIGTERM
        self.best: dict[str, float] | None = None
        self.started: float | None = None  # when meta.json said "running"
        self.earlier = 0.0  # seconds trained before this process (resumed runs)
        self.step = 0  # the last step logged

    def run(self) -> Run:
        """Train; a crash (or a second Ctrl-C) after the run started is noted in meta.json."""
        try:
            return self._run()
        except (Interrupted, Diverged):
            raise
        except BaseException as exc:
            if self.started is not None and world().is_main:
                crashed = not isinstance(exc, KeyboardInterrupt)
                with suppress(Exception):  # best effort: the original error matters more
                    self._write_meta("failed" if crashed else "interrupted", self.step,
                                     self._elapsed(), {},
                                     error=f"{type(exc).__name__}: {one_line(exc)[:500]}"
                                     if crashed else None)
            raise

    def _run(self) -> Run:
        from genzoo.backends import get_backend
        from genzoo.data import load_dataset

        p, cfg = self.plan, self.plan.train_config
        data = load_dataset(p.data, p.spec.kind)
        self.conditional = is_conditional(p.model_config)
        if self.conditional:  # refused before the framework loads
            check_labelled(data, f"{p.spec.name} ({p.spec.backend})")
        info = model_info(p, data.info)
        if self.resume:
            self._check_same_data(data)
        batches, text_val = self._batches(data)  # refuses tiny corpora before the import
        if world().enabled:
            batches = Sharded(batches)  # this rank's slice of every global batch
            self.reporter = self.reporter if world().is_main else Reporter()
        spe = batches.steps_per_epoch
        total = cfg.total_steps(spe)
        if total <= 0:
            raise DataError(f"dataset '{p.data}' gives zero training steps")

        backend = get_backend(p.spec.backend)
        generator = backend.build(p.spec, p.model_config, info, seed=cfg.seed,
                                  device=cfg.device)
        trainer = backend.make_trainer(generator, cfg)
        self.generator, self.trainer, self.spe = generator, trainer, spe
        self.data, self.backend = data, backend

        start, found = self._restore(total) if self.resume else (0, None)
        main = world().is_main  # rank 0 alone writes; every rank trains
        if main:  # on resume too: --allow-changes may have changed the config
            before = (self.run_dir.meta() or {}).get("precision") if found else None
            self.run_dir.replace()  # --overwrite: the old run goes only now that this one can start
            self.run_dir.write_json(RunDir.CONFIG, {**p.to_json(), "data_info": info.to_json(),
                                                    "genzoo": __version__,
                                                    "world_size": world().size,
                                                    "callbacks": list(self.callback_paths)})
            self._write_meta("running", start, self.earlier, {})
        self.started, self.step = time.perf_counter(), start  # a failure now is recorded
        if main and self.resume:
            self._log_resume(start, found, before)
        val_batches, test_batches = self._eval_sources(data, text_val)
        context = TrainingContext(generator, trainer, p.spec, p.model_config, cfg,
                                  self.run_dir.path if main else None, total, spe,
                                  is_main=main,
                                  description=f"{p.spec.name} ({p.spec.backend}) on {p.data}")
        self.callbacks = self._callbacks(main)
        restore_state(self.callbacks, *self.saved_callbacks)
        try:
            with self.stops.while_training(self.reporter):
                history = fit(trainer, batches, cfg, total_steps=total, steps_per_epoch=spe,
                              eval_batches=val_batches if main else None,
                              callbacks=self.callbacks, context=context,
                              checkpoint=self._checkpoint if main else None,
                              should_stop=lambda done: self.stops.should_stop(done, cfg.log_every),
                              start_step=start, elapsed=self.earlier)
        except Interrupted as exc:
            if not main:
                raise
            self._checkpoint(exc.step)
            self._write_meta("interrupted", exc.step, self._elapsed(), {})
            raise Interrupted(exc.step, (
                f"interrupted at step {exc.step}; checkpoint written. Continue with: "
                f"genzoo train {p.spec.name} --resume {self.run_dir.path}"
                + (f" --nproc {world().size}" if world().enabled else "")),
                exit_code=128 + self.stops.signal) from None  # 130 Ctrl-C, 143 SIGTERM
        except Diverged as exc:
            if main:
                self._write_meta("diverged", exc.step, self._elapsed(), {})
            raise
        wall = self._elapsed()
        if not main:  # the other ranks are done: rank 0 evaluates and writes
            return Run(self.run_dir.path, generator, history, {})
        if self.resume:  # the whole run's records, not only this segment's
            events = self.run_dir.events()
            history = History(train=[e for e in events if e.get("event") == "train"],
                              eval=[e for e in events if e.get("event") == "eval"])
        end = context.step  # total, or where a callback stopped the run
        if end > start:
            self._checkpoint(end)
        try:
            with self.stops.while_finishing():
                metrics = self._finish(end, history, test_batches)
                if context.stop_reason is not None:
                    metrics["stopped_early"] = {"step": end, "reason": context.stop_reason}
                    self.reporter.message(f"stopped at step {end}: {context.stop_reason}")
        except KeyboardInterrupt as exc:  # training is done and checkpointed: say how to finish
            self._write_meta("interrupted", total, wall, {})
            raise Interrupted(total, (
                f"interrupted while finishing (test pass, weights, samples); all {total} steps "
                f"are trained and checkpointed. Finish with: genzoo train {p.spec.name} "
                f"--resume {self.run_dir.path}"),
                exit_code=143 if isinstance(exc, Terminated) else 130) from None
        self._write_meta("complete", end, wall, metrics)
        return Run(self.run_dir.path, generator, history, metrics)

    def _finish(self, total: int, history: History, test_batches: Any) -> dict[str, Any]:
        """After the last step: the kept weights, the test pass, the final files."""
        generator, cfg = self.generator, self.plan.train_config
        ema = self._ema()
        average = ema.weights() if ema is not None else {}
        if cfg.keep_best and (self.run_dir.path / BEST).is_file():
            kept = load_tensors(self.run_dir.path / BEST)
            average = {k[len(EMA_PREFIX):]: v for k, v in kept.items() if k.startswith(EMA_PREFIX)}
            generator.load_state({k: v for k, v in kept.items() if not k.startswith(EMA_PREFIX)})
        raw = generator.state()
        if average:  # the test pass and the samples use the average, as genzoo.load does
            generator.load_state(averaged(raw, average))
        test = evaluate(self.trainer, test_batches())
        self.run_dir.log({"event": "test", "step": total,
                          **{f"test_{k}": v for k, v in test.items()}})
        self.run_dir.remove_derived()  # evaluations and samples of older weights
        save_tensors(self.run_dir.path / WEIGHTS, with_average(raw, average),
                     weights_metadata(self.plan.spec))
        self._write_samples()
        metrics = {"train": _strip(history.last("train")), "val": _strip(history.last("eval")),
                   "test": test}
        if self.best is not None:
            metrics["best"] = self.best
        return metrics

    def _batches(self, data: Any) -> tuple[Any, Any]:
        """Training batches, and for text the validation windows (both check sizes)."""
        from genzoo.data import TextBatches

        cfg = self.plan.train_config
        size = cfg.batch_size * cfg.accumulate  # a step's micro-batches, drawn as one batch
        if data.kind != "text":
            return data.train_batches(size, cfg.seed, labelled=self.conditional), None
        block = self.plan.model_config.block_size
        val = TextBatches(data.val, cfg.batch_size, block, cfg.seed,
                          f"the validation split of '{data.name}'", stream=1)
        return data.train_batches(size, cfg.seed, block_size=block), val

    def _eval_sources(self, data: Any, text_val: Any) -> tuple[Any, Any]:
        """Validation batches (during training) and test batches (at the end).

        Text: the mean over ``eval_batches`` batches of random windows of the validation
        split, fresh at every evaluation (drawn from the step, so a resumed run sees the
        same ones), as nanoGPT estimates it; and a full pass over every non-overlapping
        window at the end. Images: the whole split, in order.
        """
        from genzoo.data import fixed_batches
        from genzoo.data.text import windows

        cfg = self.plan.train_config
        if text_val is not None:
            n = cfg.eval_batches or 20
            block = self.plan.model_config.block_size
            return ((lambda step: text_val.take(n, first=step * n)),
                    (lambda: windows(data.val, block, cfg.batch_size)))
        val = self.generator.prepare_eval(data.val)
        k = self.generator.num_classes
        val_y, test_y = ((one_hot(data.val_labels, k), one_hot(data.test_labels, k)) if k
                         else (None, None))  # a conditional model is scored on its labels
        return ((lambda step: fixed_batches(val, cfg.batch_size, cfg.eval_batches, val_y)),
                (lambda: fixed_batches(self.generator.prepare_eval(data.test), cfg.batch_size,
                                       labels=test_y)))

    def _callbacks(self, main: bool) -> list[Callback]:
        """The run's callbacks, in the order they hear each event: the moving average
        first (so the others see it updated), the family's, the user's, then the run's
        own files and the progress reporter."""
        from genzoo.callbacks import callback_from_path

        cfg = self.plan.train_config
        found: list[Callback] = [EMA(cfg.ema_decay)] if cfg.ema_decay > 0 else []
        found += [callback_from_path(path) for path in self.plan.spec.callbacks]
        found += self.user_callbacks
        if main:
            found.append(_RunFiles(self))
        return [*found, ProgressCallback(self.reporter)]

    def _ema(self) -> EMA | None:
        return next((cb for cb in getattr(self, "callbacks", []) if isinstance(cb, EMA)), None)

    def _on_eval(self, step: int, metrics: Mapping[str, float]) -> None:
        """Keep the best validation weights (``keep_best``) in ``best.safetensors``."""
        if not self.plan.train_config.keep_best or "loss" not in metrics:
            return
        if self.best is None or metrics["loss"] < self.best["val_loss"]:
            ema = self._ema()
            save_tensors(self.run_dir.path / BEST,
                         with_average(self.generator.state(), ema.weights() if ema else {}),
                         weights_metadata(self.plan.spec))
            self.best = {"step": step, "val_loss": metrics["loss"]}

    # -- pieces ----------------------------------------------------------------------------
    def _elapsed(self) -> float:
        """Seconds of training so far, over every process that trained this run."""
        return self.earlier + (time.perf_counter() - self.started if self.started else 0.0)

    def _checkpoint(self, step: int) -> Path:
        tensors, values = self.trainer.state()
        kept, kept_values = split_state(getattr(self, "callbacks", []))
        return write_checkpoint(
            self.run_dir.checkpoints, step, self.generator.state(), {**tensors, **kept},
            {"model": self.plan.spec.name, "backend": self.plan.spec.backend,
             "config": self.plan.to_json(), "epoch": step / self.spe, "trainer": values,
             "callbacks": kept_values, "best": self.best,
             "elapsed_s": round(self._elapsed(), 3)},
            keep=self.plan.train_config.keep_checkpoints,
        )

    def _log(self, record: dict[str, Any]) -> None:
        self.step = record.get("step", self.step)
        self.run_dir.log(record)

    def _write_samples(self) -> None:
        seed = self.plan.train_config.seed
        if self.plan.spec.kind == "text":
            text_model: Any = self.generator  # a TextGenerator
            start = text_model.info.vocab[text_model.start_token()]
            chars = getattr(self.plan.model_config, "sample_chars", TEXT_SAMPLE_CHARS)
            text = start + text_model.generate(start, max_new_tokens=chars, seed=seed,
                                               **text_defaults(self.plan.model_config))
            atomic_write_bytes(self.run_dir.path / "samples.txt", text.encode("utf-8"))
            return
        from genzoo.imaging import save_class_grid, save_grid

        k = self.generator.num_classes
        if k:  # one labelled row per class
            images = self.generator.sample(k * CLASS_ROW, seed=seed,
                                           labels=class_rows(k, CLASS_ROW))
            save_class_grid(self.run_dir.path / "samples.png", images,
                            list(self.generator.info.classes), CLASS_ROW)
        else:
            save_grid(self.run_dir.path / "samples.png",
                      self.generator.sample(SAMPLE_COUNT, seed=seed))

    def _write_meta(self, status: str, step: int, wall: float, metrics: dict[str, Any],
                    error: str | None = None) -> None:
        spec, data = self.plan.spec, self.data
        plugin = next((i for i in _plugins() if i.name == spec.plugin), None)
        self.run_dir.write_json(RunDir.META, {
            "status": status,
            **({"error": error} if error else {}),
            "genzoo": __version__,
            "genzoo_commit": _git_commit(),
            "plugin": {"name": spec.plugin,
                       "distribution": plugin.distribution if plugin else "?",
                       "version": plugin.version if plugin else "?"},
            "frameworks": self.backend.versions(),
            "backend": spec.backend,
            "device": str(getattr(self.generator, "device", "")),
            "precision": getattr(self.trainer, "precision", self.plan.train_config.precision),
            "data": {"name": data.name, "source": data.source, "sha256": data.checksum,
                     "train": len(data.train), "val": len(data.val), "test": len(data.test)},
            "num_parameters": self.generator.num_parameters(),
            "step": step,
            "epoch": step / self.spe,
            "wall_time_s": round(wall, 3),
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "metrics": metrics,
        })


class _RunFiles(Callback):
    """The run's own records: ``metrics.jsonl``, and ``best.safetensors`` (rank 0)."""

    key = "run_files"

    def __init__(self, session: Session):
        self.session = session

    def on_log(self, run: TrainingContext, record: Mapping[str, Any]) -> None:
        self.session._log(dict(record))

    def on_eval(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        self.session._on_eval(step, metrics)


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("event",)}


@lru_cache(maxsize=1)
def _git_commit() -> str | None:
    """The commit of a genzoo checkout (None for an installed release)."""
    import subprocess
    from pathlib import Path

    try:
        out = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()[:12] if out.returncode == 0 else None


def _plugins() -> tuple[Any, ...]:
    from genzoo.registry import get_registry

    return get_registry().plugins
