"""Autoregressive sampling, written once for every backend (numpy on the host).

A text model exposes two steps to the core:

- ``prefill(ids) -> (logits, cache)``: run a context (at most ``block_size`` tokens,
  positions from 0) and return the next-token logits and a key-value cache;
- ``extend(token, cache, position) -> (logits, cache)``: append one token at
  ``position`` using the cache.

The context policy is nanoGPT's: the model always sees the last ``block_size`` tokens.
While the sequence fits in the window, the cache makes each new token cost one position
instead of the whole prefix. Past the window the learned absolute positions shift, so
both paths re-encode the window; this keeps cached and uncached generation identical.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from genzoo.errors import PluginError
from genzoo.plugins import PluginWarning

TEMPERATURE = 0.8  # the defaults of genzoo sample, generate() and stream(), as nanoGPT's
TOP_K = 40

Prefill = Callable[[Sequence[int]], tuple[np.ndarray, Any]]
Extend = Callable[[int, Any, int], tuple[np.ndarray, Any]]


def next_token(logits: np.ndarray, temperature: float, top_k: int | None,
               rng: np.random.Generator) -> int:
    """Draw a token from ``softmax(logits / temperature)`` restricted to the top k.

    ``temperature == 0`` picks the most likely token.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> next_token(np.array([0.0, 5.0, 1.0]), 0.0, None, rng)
        1
        >>> next_token(np.array([9.0, 0.0, 8.0]), 1.0, 1, rng)
        0
    """
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return int(np.argmax(logits))
    scaled = logits / temperature
    if top_k is not None and top_k < len(scaled):
        kth = np.partition(scaled, -top_k)[-top_k]
        scaled = np.where(scaled < kth, -np.inf, scaled)
    probs = np.exp(scaled - scaled.max())
    cdf = np.cumsum(probs)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(cdf) - 1))


def stream_tokens(prefill: Prefill, extend: Extend | None, prompt: Sequence[int], *,
                  max_new_tokens: int, block_size: int, temperature: float = 1.0,
                  top_k: int | None = None, seed: int = 0) -> Iterator[int]:
    """Yield ``max_new_tokens`` sampled token ids; ``extend=None`` disables the cache."""
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    rng = np.random.default_rng(seed)
    ids = list(prompt)
    cache: Any = None
    cached_upto = 0  # the cache covers ids[:cached_upto], at positions from 0
    for _ in range(max_new_tokens):
        if extend is not None and cache is not None and cached_upto == len(ids) - 1 \
                and len(ids) <= block_size:
            logits, cache = extend(ids[-1], cache, len(ids) - 1)
            cached_upto, step = cached_upto + 1, "extend"
        else:
            window = ids[-block_size:]
            logits, cache = prefill(window)
            cached_upto = len(ids) if len(window) == len(ids) else -1  # shifted: unusable
            step = "prefill"
        shape = tuple(np.shape(logits))
        if len(shape) == 2 and shape[0] == 1:  # a batch of one: read as its row, said once
            warnings.warn(f"the model's {step} returns logits of shape {shape}; genzoo reads "
                          f"its one row, but expects shape ({shape[1]},)", PluginWarning,
                          stacklevel=2)
            logits = np.asarray(logits)[0]
        elif len(shape) != 1:  # (as a batch, top-k would quietly be off)
            raise PluginError(f"the model's {step} returned logits of shape {shape}; it must "
                              "return one vector of vocabulary scores, shape (vocab_size,)")
        token = next_token(logits, temperature, top_k, rng)
        ids.append(token)
        yield token
