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


def png_bytes(image: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """``image`` (uint8 HWC) as PNG bytes; ``text``: tEXt chunks to store with it."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    array = image[..., 0] if image.shape[-1] == 1 else image
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


GRID_KEY = "genzoo.grid"  # the PNG text chunk that describes a class grid's layout
FONT_SIZE = 12


def class_grid(images: np.ndarray, names: list[str], per_class: int, pad: int = 1,
               min_cell: int = 28) -> tuple[np.ndarray, dict[str, object]]:
    """One row per class: ``images`` holds ``per_class`` images of class 0, then of class
    1, ...; each row starts with the class's name in a white margin.

    Returns the uint8 HWC image and its layout (what ``save_class_grid`` stores in the
    PNG): cell ``(row, col)`` of size ``cell`` starts at ``y = pad + row * (cell[0] +
    pad)``, ``x = left + pad + col * (cell[1] + pad)``; ``scale`` is the integer factor
    the images were enlarged by (nearest neighbour).
    """
    from PIL import Image, ImageDraw, ImageFont

    n, h, w, c = images.shape
    rows = len(names)
    if n != rows * per_class:
        raise ValueError(f"{n} images for {rows} classes of {per_class}")
    body = grid(images, ncol=per_class, pad=pad, min_cell=min_cell)
    scale = max(1, math.ceil(min_cell / max(h, w)))
    font = ImageFont.load_default(size=FONT_SIZE)
    measure = ImageDraw.Draw(Image.new("L", (1, 1)))
    left = int(max(measure.textlength(name, font=font) for name in names)) + 2 * 4
    canvas = Image.new("L", (left + body.shape[1], body.shape[0]), 255)
    draw = ImageDraw.Draw(canvas)
    cell_h = h * scale
    for row, name in enumerate(names):
        centre = pad + row * (cell_h + pad) + cell_h // 2
        draw.text((4, centre), name, fill=0, font=font, anchor="lm")
    out = np.repeat(np.asarray(canvas)[..., None], c, axis=2)
    out[:, left:] = body
    layout = {"rows": rows, "cols": per_class, "cell": [cell_h, w * scale], "pad": pad,
              "left": left, "scale": scale, "labels": list(range(rows)), "classes": names}
    return out, layout


def save_class_grid(path: Path, images: np.ndarray, names: list[str], per_class: int) -> None:
    """Write ``class_grid`` to a PNG file atomically, its layout as JSON in the PNG's
    ``genzoo.grid`` text chunk (``read_class_grid`` reads both back)."""
    import json

    image, layout = class_grid(images, names, per_class)
    atomic_write_bytes(Path(path), png_bytes(image, {GRID_KEY: json.dumps(layout)}))


def read_class_grid(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The cells of a class grid PNG as float32 NHWC images in [0, 1] at their original
    size, and the label of each, from its ``genzoo.grid`` layout."""
    import json

    from PIL import Image

    with Image.open(path) as png:
        layout = json.loads(getattr(png, "text", {})[GRID_KEY])
        pixels = np.asarray(png)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    (ch, cw), pad, left, scale = layout["cell"], layout["pad"], layout["left"], layout["scale"]
    cells, labels = [], []
    for row in range(layout["rows"]):
        for col in range(layout["cols"]):
            top, x = pad + row * (ch + pad), left + pad + col * (cw + pad)
            cells.append(pixels[top:top + ch:scale, x:x + cw:scale])
            labels.append(layout["labels"][row])
    return np.stack(cells).astype(np.float32) / 255.0, np.array(labels, np.int64)


def save_grid(path: Path, images: np.ndarray, ncol: int | None = None) -> None:
    """Write a grid of NHWC images in [0, 1] to a PNG file, atomically."""
    atomic_write_bytes(Path(path), png_bytes(grid(images, ncol)))
