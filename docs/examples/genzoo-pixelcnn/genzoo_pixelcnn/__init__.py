"""genzoo plugin: PixelCNN, an autoregressive model of binary images."""

from __future__ import annotations

from genzoo import hookimpl
from genzoo.registry import ModelSpec
from genzoo_pixelcnn.config import PRESETS, PixelCNNConfig

SPEC = ModelSpec(
    name="pixelcnn",
    backend="torch",
    kind="image",
    config=PixelCNNConfig,
    builder="genzoo_pixelcnn.model:PixelCNN",  # imported only when the model is built
    evaluator="genzoo_pixelcnn.evaluate:evaluate",  # its own metric for `genzoo eval`
    presets=PRESETS,
    default_preset="default",
    default_dataset="digits",
    summary="PixelCNN: masked convolutions, exact log-likelihood of binarised images",
)


@hookimpl
def register_models(register):
    register(SPEC)
