"""The Transformer's config and presets (no framework imports: listing models reads this)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from genzoo.config import MAX_NEW_TOKENS, ModelConfig, require


@dataclass(frozen=True)
class TransformerConfig(ModelConfig):
    """A decoder-only, character-level GPT (nanoGPT's architecture)."""

    n_layer: int = 4  # Transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 128  # embedding width; a multiple of n_head
    block_size: int = 64  # context length in characters
    dropout: float = 0.0  # on attention weights, residual branches and embeddings
    bias: bool = True  # biases in Linear layers and LayerNorms
    sample_chars: int = 500  # characters generated into samples.txt after training
    temperature: float = 0.8  # sampling: softmax temperature; 0 picks the likeliest character
    top_k: int = 40  # sampling: draw among the k likeliest characters; 0 among all

    SAMPLING: ClassVar[tuple[str, ...]] = ("sample_chars", "temperature", "top_k")

    def validate(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "block_size"):
            require(getattr(self, name) > 0, name, "must be positive")
        require(self.n_embd % self.n_head == 0, "n_embd", "must be a multiple of n_head")
        require(0 <= self.dropout < 1, "dropout", "must lie in [0, 1)")
        require(self.sample_chars >= 0, "sample_chars", "must not be negative")
        require(self.temperature >= 0, "temperature", "must not be negative")
        require(self.top_k >= 0, "top_k", "must not be negative (0: no top-k)")
        require(self.sample_chars <= MAX_NEW_TOKENS, "sample_chars",  # generate()'s bound
                f"must be at most {MAX_NEW_TOKENS:,}")


# nanoGPT's Shakespeare-char recipe: no biases, AdamW (0.9, 0.99), weight decay 0.1 on
# matrices, gradient clipping at 1, 100 warm-up steps, cosine decay from 1e-3 to 1e-4.
_NANOGPT = {"bias": False, "optimizer": "adamw", "lr": 1e-3, "min_lr": 1e-4, "lr_schedule": "cosine",
            "warmup_steps": 100, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1,
            "grad_clip": 1.0, "keep_best": True}

PRESETS = {
    # nanoGPT's "I only have a macbook" configuration; published best val loss 1.88.
    "nanogpt-cpu": {**_NANOGPT, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64,
                    "dropout": 0.0, "batch_size": 12, "steps": 2000, "eval_every": 250,
                    "eval_batches": 20, "log_every": 50, "checkpoint_every": 500},
    # nanoGPT's "baby GPT" for a GPU: published best val loss 1.47 on Shakespeare.
    "baby": {**_NANOGPT, "n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256,
             "dropout": 0.2, "batch_size": 64, "steps": 5000, "eval_every": 250,
             "eval_batches": 200, "log_every": 50, "checkpoint_every": 500},
    "tiny": {**_NANOGPT, "n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 16,
             "sample_chars": 64, "batch_size": 8, "steps": 30, "warmup_steps": 5, "lr": 3e-3, "min_lr": 3e-4,
             "eval_every": 15, "eval_batches": 4, "log_every": 10, "checkpoint_every": 10},
}
