"""The Transformer family: a character-level GPT, in PyTorch and Keras 3."""

from __future__ import annotations

from collections.abc import Callable

from genzoo import hookimpl
from genzoo.registry import ModelSpec
from genzoo_transformer.config import PRESETS, TransformerConfig

SPECS = tuple(
    ModelSpec(
        name="transformer", backend=backend, kind="text", config=TransformerConfig,
        builder=builder, presets=PRESETS, default_preset="nanogpt-cpu",
        default_dataset="python-docs",
        summary="Character-level GPT: causal self-attention, pre-LayerNorm, tied weights",
    )
    for backend, builder in (("torch", "genzoo_transformer.torch_gpt:GPT"),
                             ("keras", "genzoo_transformer.keras_gpt:GPT"))
)


@hookimpl
def register_models(register: Callable[[ModelSpec], None]) -> None:
    for spec in SPECS:
        register(spec)
