"""A callback with state, for tests: it counts its events, and on_train_end writes the
counts that its saved state carries (steps, log records, evaluations) to the run folder."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from genzoo.callbacks import Callback, TrainingContext


class Count(Callback):
    key = "count"

    def __init__(self) -> None:
        self.counts = {"step": 0, "log": 0, "eval": 0}
        self.metrics: dict[str, float] = {}

    def on_step_end(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        self.counts["step"] += 1
        self.metrics = dict(metrics)

    def on_log(self, run: TrainingContext, record: Mapping[str, Any]) -> None:
        self.counts["log"] += 1

    def on_eval(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        self.counts["eval"] += 1

    def on_train_end(self, run: TrainingContext, history: Any) -> None:
        if run.out is not None and run.error is None:
            (run.out / "counts.json").write_text(json.dumps(self.counts))

    def state_dict(self) -> dict[str, Any]:
        return dict(self.counts)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.counts = {k: int(v) for k, v in state.items()}
