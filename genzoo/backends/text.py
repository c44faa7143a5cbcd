"""Text generation shared by the backends' text generators (no framework imports)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from genzoo.backends.common import random_seed
from genzoo.data.text import CharTokenizer
from genzoo.errors import ConfigError
from genzoo.sampling import stream_tokens


class TextSampling:
    """Adds ``generate``, ``stream`` and ``sample`` to a generator with a text model.

    The backend class supplies ``_prefill(ids)`` and ``_extend(token, cache, position)``
    returning numpy logits, and ``_eval_mode()``, a context manager.
    """

    info: Any
    config: Any

    def _prefill(self, ids: Sequence[int]) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _extend(self, token: int, cache: Any, position: int) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def _eval_mode(self) -> Any:
        raise NotImplementedError

    @property
    def tokenizer(self) -> CharTokenizer:
        return CharTokenizer(self.info.vocab)

    def stream(self, prompt: str, *, max_new_tokens: int, temperature: float = 1.0,
               top_k: int | None = None, seed: int | None = None,
               cache: bool = True) -> Iterator[str]:
        """Continue ``prompt``, yielding one character at a time.

        Raises:
            DataError: the prompt holds characters outside the model's vocabulary.
        """
        if temperature < 0:
            raise ConfigError("temperature must not be negative")
        if top_k is not None and top_k < 1:
            raise ConfigError("top_k must be at least 1")
        tokenizer = self.tokenizer
        ids = tokenizer.encode(prompt).tolist()
        if not ids:
            ids = [self.start_token()]
        with self._eval_mode():
            for token in stream_tokens(
                    self._prefill, self._extend if cache else None, ids,
                    max_new_tokens=max_new_tokens, block_size=self.config.block_size,
                    temperature=temperature, top_k=top_k,
                    seed=random_seed() if seed is None else seed):
                yield tokenizer.vocab[token]

    def generate(self, prompt: str, *, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, seed: int | None = None, cache: bool = True) -> str:
        """Continue ``prompt`` and return the new text."""
        return "".join(self.stream(prompt, max_new_tokens=max_new_tokens,
                                   temperature=temperature, top_k=top_k, seed=seed,
                                   cache=cache))

    def start_token(self) -> int:
        """A newline when the vocabulary has one (texts start lines), else the first id."""
        return self.info.vocab.find("\n") if "\n" in self.info.vocab else 0

    def sample(self, n: int, *, seed: int | None = None) -> np.ndarray:
        """``n`` sequences of ``block_size`` token ids (int64), each from a newline."""
        base = random_seed() if seed is None else seed
        start = self.info.vocab[self.start_token()]
        rows = [self.tokenizer.encode(self.generate(start, max_new_tokens=self.config.block_size,
                                                    seed=base + i)) for i in range(n)]
        return np.stack(rows).astype(np.int64)
