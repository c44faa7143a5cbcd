"""What the conformance kit's checks share: the error they raise, the context they run
in, the synthetic data they train on, and the check of a batch of samples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genzoo.testing_data import synthetic_images, synthetic_text


class ConformanceError(AssertionError):
    """A model failed one conformance check."""


@dataclass
class Context:
    name: str
    backend: str
    tmp_path: Path
    data: str = ""
    run: Any = None

    @property
    def spec(self) -> Any:
        from genzoo.registry import get_registry

        return get_registry().model(self.name, self.backend)


def _synthetic_data(ctx: Context) -> str:
    if not ctx.data:
        if ctx.spec.kind == "text":
            ctx.data = str(synthetic_text(ctx.tmp_path / "data" / "corpus.txt"))
        else:
            ctx.data = str(synthetic_images(ctx.tmp_path / "data"))
    return ctx.data


def _check_draw(gen: Any, x: Any, n: int, what: str = "samples") -> None:
    """``x`` is a valid batch of ``n`` samples of ``gen``'s kind."""
    text = gen.info.kind == "text"
    expected = (n, gen.config.block_size) if text else (n, *gen.info.shape)
    dtype = np.dtype(np.int64 if text else np.float32)
    low, high = (0, gen.info.vocab_size - 1) if text else (0.0, 1.0)
    if x.shape != expected:
        raise ConformanceError(f"{what}: shape {x.shape}, expected {expected}")
    if x.dtype != dtype:
        raise ConformanceError(f"{what}: dtype {x.dtype}, expected {dtype.name}")
    if not (np.isfinite(x).all() and x.min() >= low and x.max() <= high):
        raise ConformanceError(f"{what}: values outside [{low}, {high}] ({x.min()}..{x.max()})")
