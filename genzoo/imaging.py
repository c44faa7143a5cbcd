"""Image grids and PNG files (Pillow), without any framework."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from genzoo.checkpoint import atomic_write_bytes


def grid(images: np.ndarray, ncol: int | None = None, pad: int = 1,
         min_cell: int = 28) -> np.ndarray:
    """Tile NHWC images in [0, 1] into one uint8 HWC image.

    Small images are enlarged by an integer factor (nearest neighbour) so each cell is
    at least ``min_cell`` pixels: an 8x8 digit stays readable.
    """
    n, h, w, c = images.shape
    scale = max(1, math.ceil(min_cell / max(h, w)))
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    canvas = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), dtype=np.float32)
    for i in range(n):
        r, col = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        canvas[top : top + h, left : left + w] = images[i]
    return (np.clip(canvas, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    array = image[..., 0] if image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def save_grid(path: Path, images: np.ndarray, ncol: int | None = None) -> None:
    """Write a grid of NHWC images in [0, 1] to a PNG file, atomically."""
    atomic_write_bytes(Path(path), png_bytes(grid(images, ncol)))
