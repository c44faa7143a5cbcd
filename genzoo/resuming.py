"""Resuming a run: the newest checkpoint that verifies, the data it was trained on, and
the record of the resume (a part of ``genzoo.session.Session``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from genzoo.checkpoint import (WEIGHTS, checkpoint_step, complete_checkpoints,
                               read_checkpoint, remove_path, remove_unfinished_checkpoints)
from genzoo.distributed import world
from genzoo.errors import CheckpointError, DataError, one_line
from genzoo.planning import finished_error, model_info
from genzoo.protocols import DataInfo
from genzoo.runs import check_origin
from genzoo.callbacks import without_callback_tensors


class Resuming:
    """The resume steps of a ``Session``, which provides the attributes used here."""

    run_dir: Any
    plan: Any
    generator: Any
    trainer: Any
    reporter: Any
    best: Any
    earlier: float
    saved_callbacks: tuple[dict[str, Any], dict[str, Any]]

    def _check_same_data(self, data: Any) -> None:
        """A resumed run must see the data it was trained on: the same vocabulary or image
        shape (the weights' meaning depends on it); changed contents are a warning."""
        saved = self.run_dir.read_config()["data_info"]
        if model_info(self.plan, data.info).to_json() != DataInfo.from_json(saved).to_json():
            what = "vocabulary" if data.kind == "text" else "image shape or classes"
            raise DataError(f"the {what} of '{data.name}' differs from the one "
                            f"{self.run_dir.path} was trained on; it cannot be resumed on it")
        meta = self.run_dir.meta()
        recorded = meta.get("data", {}).get("sha256") if meta else None
        if recorded and recorded != data.checksum and world().is_main:
            warnings.warn(f"'{data.name}' has changed since {self.run_dir.path} was trained "
                          "(its sha256 differs); resuming on the new contents", stacklevel=2)

    def _restore(self, total: int) -> tuple[int, Path | None]:
        """Load the newest checkpoint that verifies; a corrupt one is skipped, with a warning.
        A run killed before its first checkpoint starts from step 0 (``None``).

        A run that has already trained its ``total`` steps is refused, untouched.
        """
        main = world().is_main
        if main:
            self.run_dir.check_layout()
            remove_unfinished_checkpoints(self.run_dir.checkpoints)
            self.run_dir.remove_temporaries()
        candidates = complete_checkpoints(self.run_dir.checkpoints)
        meta = self.run_dir.meta() or {}
        newest = checkpoint_step(candidates[0]) if candidates else 0
        if meta.get("status") == "complete" and newest >= total:  # even if it is corrupt
            raise finished_error(self.run_dir.path, newest, total)
        if not candidates:
            if (meta.get("status") in (None, "running", "killed")
                    and not (self.run_dir.path / WEIGHTS).exists()):
                return 0, None  # killed before its first checkpoint: train it from the start
            raise CheckpointError(f"{self.run_dir.path} has no checkpoint to resume from")
        for i, found in enumerate(candidates):
            try:
                weights, trainer_tensors, state = read_checkpoint(found)
                check_origin({"genzoo.model": str(state.get("model", "")),
                              "genzoo.backend": str(state.get("backend", ""))},
                             self.plan.spec, found)
                self.generator.load_state(weights)
                try:  # state.json has no checksum of its own: a hand-edited one may not fit
                    self.trainer.load_state(without_callback_tensors(trainer_tensors),
                                            state.get("trainer", {}))
                except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                    raise CheckpointError(f"{found / 'state.json'} is damaged: its trainer "
                                          f"state does not fit ({one_line(exc)[:200]})") from None
                break
            except CheckpointError as exc:
                if i + 1 == len(candidates):
                    raise
                if main:  # set it aside, so neither `latest` nor pruning keeps it
                    aside = found.with_name(f"corrupt-{found.name}")
                    remove_path(aside)
                    found.rename(aside)
                    warnings.warn(f"{exc}; it is kept as {aside.name}, and the run resumes "
                                  f"from the older {candidates[i + 1].name}", stacklevel=2)
        step = int(state["step"])
        if step > total:
            raise finished_error(self.run_dir.path, step, total)
        self.best = state.get("best")
        self.saved_callbacks = ({k: v for k, v in trainer_tensors.items()
                                 if k.startswith("callback.")}, state.get("callbacks", {}))
        self.earlier = float(state.get("elapsed_s", 0.0))  # older checkpoints lack it
        return step, found

    def _log_resume(self, step: int, found: Path | None, before: str | None) -> None:
        """Record the resume in metrics.jsonl: once config.json and meta.json are written,
        so that a resume failing before then leaves the records as they were. A run
        killed before its first checkpoint (``found`` is None) starts its log again."""
        self.run_dir.truncate_log(step if found is not None else -1)
        precision = getattr(self.trainer, "precision", None)
        self.run_dir.log({"event": "resume", "step": step,
                          "checkpoint": found.name if found is not None else None,
                          **({"precision": precision} if precision else {})})
        self.reporter.message(f"resuming from {found}" if found is not None else
                              "no checkpoint was written before the run was killed; "
                              "training it from step 0")
        if before and precision and before != precision:  # precision=auto, another device
            warnings.warn(f"{self.run_dir.path} trained in {before} so far and continues "
                          f"in {precision} on this device; to keep {before}, resume with "
                          f"--set precision={before} --allow-changes", stacklevel=2)
