"""TensorBoard logging (``genzoo train --log tensorboard``): scalars at every log line, and
a sample grid (or text) at every evaluation, in ``RUN/tensorboard``.

Needs the ``tensorboard`` package (``pip install 'genzoo[tensorboard]'``); nothing else
of TensorFlow. View with ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from genzoo.callbacks import Callback, TrainingContext
from genzoo.errors import ConfigError
from genzoo.protocols import History

FOLDER = "tensorboard"
NOT_SCALARS = ("event", "step", "epoch", "time")


def _protos() -> Any:
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise ConfigError("--log tensorboard needs the tensorboard package: pip install "
                          "'genzoo[tensorboard]' (or pip install tensorboard)") from None
    return event_pb2, summary_pb2, tensor_pb2, EventFileWriter


def tag(key: str) -> str:
    """``loss`` -> ``train/loss``, ``val_loss`` -> ``val/loss``: one chart per metric,
    grouped by split."""
    return f"val/{key[4:]}" if key.startswith("val_") else f"train/{key}"


class TensorBoard(Callback):
    """Writes TensorBoard event files under the run folder (rank 0 only).

    Args:
        folder: the sub-folder of the run to write to.
        samples: images in the grid drawn at each evaluation (text models: characters).
    """

    key = "tensorboard"

    def __init__(self, folder: str = FOLDER, samples: int = 16):
        self.folder, self.samples = folder, samples
        self.writer: Any = None
        self._event_pb2, self._summary_pb2, self._tensor_pb2, self._writer = _protos()

    def on_train_start(self, run: TrainingContext) -> None:
        if not run.is_main or run.out is None:
            return
        self.writer = self._writer(str(run.out / self.folder))
        if run.start_step:  # resumed: TensorBoard drops what the killed run logged after
            log = self._event_pb2.SessionLog(status=self._event_pb2.SessionLog.START)
            self._write(run.start_step, session_log=log)

    def _write(self, step: int, **fields: Any) -> None:
        import time

        self.writer.add_event(self._event_pb2.Event(wall_time=time.time(), step=step,
                                                    **fields))

    def on_log(self, run: TrainingContext, record: Mapping[str, Any]) -> None:
        if self.writer is None:
            return
        values = [self._summary_pb2.Summary.Value(tag=tag(k), simple_value=float(v))
                  for k, v in record.items() if k not in NOT_SCALARS
                  and isinstance(v, (int, float)) and math.isfinite(v)]
        self._write(int(record["step"]), summary=self._summary_pb2.Summary(value=values))

    def on_eval(self, run: TrainingContext, step: int, metrics: Mapping[str, float]) -> None:
        if self.writer is None or self.samples <= 0:
            return
        seed = run.train_config.seed
        if run.spec.kind == "text":
            value = self._text(run, seed)
        else:
            from genzoo.imaging import grid, png_bytes

            images = grid(run.generator.sample(self.samples, seed=seed))
            height, width = images.shape[:2]
            channels = images.shape[2] if images.ndim == 3 else 1
            image = self._summary_pb2.Summary.Image(
                height=height, width=width, colorspace=channels,
                encoded_image_string=png_bytes(images))
            value = self._summary_pb2.Summary.Value(tag="samples", image=image)
        self._write(step, summary=self._summary_pb2.Summary(value=[value]))
        self.writer.flush()

    def _text(self, run: TrainingContext, seed: int) -> Any:
        model: Any = run.generator
        start = model.info.vocab[model.start_token()]
        text = start + model.generate(start, max_new_tokens=self.samples * 16, seed=seed)
        tensor = self._tensor_pb2.TensorProto(dtype=7, string_val=[text.encode("utf-8")])
        tensor.tensor_shape.dim.add(size=1)  # dtype 7 is DT_STRING
        metadata = self._summary_pb2.SummaryMetadata(
            plugin_data=self._summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
        return self._summary_pb2.Summary.Value(tag="samples", metadata=metadata, tensor=tensor)

    def on_train_end(self, run: TrainingContext, history: History) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
