"""PixelCNN's config and presets (no torch import: `genzoo list` reads this)."""

from __future__ import annotations

from dataclasses import dataclass

from genzoo.config import ModelConfig, require


@dataclass(frozen=True)
class PixelCNNConfig(ModelConfig):
    channels: int = 32  # feature maps in every masked convolution
    layers: int = 5  # masked 3x3 convolutions after the first 7x7 one

    def validate(self) -> None:
        require(self.channels > 0, "channels", "must be positive")
        require(self.layers >= 0, "layers", "must not be negative")


PRESETS = {
    "default": {"channels": 32, "layers": 5, "epochs": 30, "batch_size": 64, "lr": 2e-3},
    "tiny": {"channels": 8, "layers": 1, "steps": 30, "batch_size": 32, "lr": 3e-3,
             "log_every": 10, "checkpoint_every": 10},
}
