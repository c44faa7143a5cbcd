"""Helpers shared by the backend adapters (no framework imports)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from genzoo.errors import CheckpointError


def check_state_matches(
    expected: Mapping[str, tuple[int, ...]], tensors: Mapping[str, np.ndarray], what: str
) -> None:
    """Refuse weights whose names or shapes differ from the model's, naming the first few."""
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"these weights do not fit {what}: missing {missing[:3] or 'none'}, "
            f"unexpected {extra[:3] or 'none'}"
        )
    for name, shape in expected.items():
        got = tuple(tensors[name].shape)
        if got != tuple(shape):
            raise CheckpointError(
                f"these weights do not fit {what}: '{name}' has shape {got}, the model "
                f"expects {tuple(shape)}"
            )


def random_seed() -> int:
    """A fresh seed for sampling when the caller gave none."""
    return int(np.random.SeedSequence().generate_state(1)[0])
