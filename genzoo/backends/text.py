"""Text generation shared by the backends' text generators (no framework imports)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from genzoo.backends.common import random_seed
from genzoo.conditioning import valid_labels
from genzoo.config import MAX_NEW_TOKENS, valid_count, valid_seed, next_seed, shown
from genzoo.data.text import CharTokenizer
from genzoo.errors import ConfigError
from genzoo.sampling import TEMPERATURE, TOP_K, stream_tokens


class TextSampling:
    """Adds ``generate``, ``stream`` and ``sample`` to a generator with a text model.

    The backend class supplies ``_prefill(ids)`` and ``_extend(token, cache, position)``
    returning numpy logits, and ``_eval_mode()``, a context manager.
    """

    info: Any
    config: Any
    spec: Any

    def _prefill(self, ids: Sequence[int]) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _extend(self, token: int, cache: Any, position: int) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _eval_mode(self) -> Any:
        raise NotImplementedError

    @property
    def tokenizer(self) -> CharTokenizer:
        return CharTokenizer(self.info.vocab)

    def stream(self, prompt: str, *, max_new_tokens: int, temperature: float = TEMPERATURE,
               top_k: int | None = TOP_K, seed: int | None = None,
               cache: bool = True) -> Iterator[str]:
        """Continue ``prompt``, yielding one character at a time.

        The defaults (temperature 0.8, top-k 40) are ``genzoo sample``'s; pass
        ``temperature=1.0, top_k=None`` to draw from the model's own distribution.
        ``max_new_tokens`` is at most 1,000,000 (``genzoo.config.MAX_NEW_TOKENS``).

        Raises:
            ConfigError: a bad argument (checked at the call, not at the first character).
            DataError: the prompt holds characters outside the model's vocabulary.
        """
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
                or not 0 <= temperature < math.inf:
            raise ConfigError(f"temperature must be a finite number of at least 0, "
                              f"not {temperature!r}")
        top_k = None if top_k is None else valid_count(top_k, "top_k")
        max_new_tokens = valid_count(max_new_tokens, "max_new_tokens", 0)
        if max_new_tokens > MAX_NEW_TOKENS:
            raise ConfigError(f"max_new_tokens must be at most {MAX_NEW_TOKENS:,}, not "
                              f"{shown(max_new_tokens)}")
        seed = valid_seed(seed)
        if not isinstance(prompt, str):
            raise ConfigError(f"the prompt must be a string, not {type(prompt).__name__}")
        tokenizer = self.tokenizer
        ids = tokenizer.encode(prompt).tolist() or [self.start_token()]
        return self._stream(tokenizer, ids, max_new_tokens, temperature, top_k,
                            random_seed() if seed is None else seed, cache)

    def _stream(self, tokenizer: CharTokenizer, ids: list[int], max_new_tokens: int,
                temperature: float, top_k: int | None, seed: int, cache: bool) -> Iterator[str]:
        with self._eval_mode():
            for token in stream_tokens(
                    self._prefill, self._extend if cache else None, ids,
                    max_new_tokens=max_new_tokens, block_size=self.config.block_size,
                    temperature=temperature, top_k=top_k, seed=seed):
                yield tokenizer.vocab[token]

    def generate(self, prompt: str, *, max_new_tokens: int, temperature: float = TEMPERATURE,
                 top_k: int | None = TOP_K, seed: int | None = None, cache: bool = True) -> str:
        """Continue ``prompt`` and return the new text (``stream``'s arguments)."""
        return "".join(self.stream(prompt, max_new_tokens=max_new_tokens,
                                   temperature=temperature, top_k=top_k, seed=seed,
                                   cache=cache))

    def start_token(self) -> int:
        """A newline when the vocabulary has one (texts start lines), else the first id."""
        return self.info.vocab.find("\n") if "\n" in self.info.vocab else 0

    num_classes = 0  # text models are not conditional on classes

    def sample(self, n: int, *, seed: int | None = None, labels: Any = None) -> np.ndarray:
        """``n`` sequences of ``block_size`` token ids (int64), each from a newline, drawn
        from the model's own distribution (temperature 1, no top-k)."""
        n, seed = valid_count(n), valid_seed(seed)
        if labels is not None:
            valid_labels(labels, n, 0, f"{self.spec.name} ({self.spec.backend})")  # refused
        base = random_seed() if seed is None else seed
        start = self.info.vocab[self.start_token()]
        rows = [self.tokenizer.encode(self.generate(
            start, max_new_tokens=self.config.block_size, temperature=1.0, top_k=None,
            seed=next_seed(base, i))) for i in range(n)]
        return np.stack(rows).astype(np.int64)

    def interpolate(self, seed_a: int, seed_b: int, steps: int, *,
                    labels: Any = None) -> np.ndarray:
        """Text models have no latent space to interpolate in."""
        raise ConfigError(f"{self.spec.name} is a text model: it has no latent space to "
                          "interpolate in")
