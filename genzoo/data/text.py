"""Text datasets: a character tokenizer, a nanoGPT-style split, random windows."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genzoo.errors import DataError
from genzoo.protocols import DataInfo

VAL_FRACTION = 0.1  # the last 10% of the text is the validation split, as in nanoGPT


class CharTokenizer:
    """Maps each character of a fixed vocabulary to its index in that vocabulary.

    Examples:
        >>> tok = CharTokenizer.from_text("hello")
        >>> tok.vocab, tok.encode("hell").tolist(), tok.decode([3, 2])
        ('ehlo', [1, 0, 2, 2], 'ol')
    """

    def __init__(self, vocab: str):
        if len(set(vocab)) != len(vocab):
            raise ValueError("a vocabulary lists each character once")
        self.vocab = vocab
        codes = _codepoints(vocab)
        self._order = np.argsort(codes)
        self._sorted = codes[self._order]

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """Token ids of ``text``; characters outside the vocabulary are an error."""
        codes = _codepoints(text)
        pos = np.minimum(np.searchsorted(self._sorted, codes), len(self._sorted) - 1)
        bad = self._sorted[pos] != codes
        if bad.any():
            unknown = sorted({chr(c) for c in codes[bad]})
            shown = ", ".join(repr(ch) for ch in unknown[:5])
            raise DataError(f"characters not in the model's vocabulary: {shown}")
        return self._order[pos].astype(np.int64)

    def decode(self, ids: object) -> str:
        return "".join(self.vocab[int(i)] for i in np.asarray(ids).reshape(-1))


def _codepoints(text: str) -> np.ndarray:
    # surrogatepass: a lone surrogate (a shell argument's invalid UTF-8 byte) is a code point
    # like any other, so it is reported as outside the vocabulary instead of crashing
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def decode_utf8(data: bytes, path: Path | str) -> str:
    """Decode UTF-8, naming the byte offset of the first invalid byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path} is not UTF-8 text: invalid byte 0x{data[exc.start]:02x} at byte "
            f"offset {exc.start}"
        ) from None


@dataclass
class TextData:
    """A character-level corpus, tokenised, split into train and validation ids.

    A dataset plugin's loader returns one, e.g. ``TextData("poems", text, source=path)``:
    the vocabulary is the text's distinct characters, and the last 10% of the text is
    the validation split (text has no separate test split: ``test`` is ``val``).

    Attributes:
        name: the corpus's name, as `genzoo datasets` lists it.
        text: the whole text (at least two characters).
        source: where the text came from (a path or a description), for ``meta.json``.
        tokenizer: the character tokenizer built from ``text``.
        train: the token ids of the first 90% of the text.
        val: the token ids of the last 10%.
    """

    name: str
    text: str
    source: str = ""
    tokenizer: CharTokenizer = field(init=False)
    train: np.ndarray = field(init=False)
    val: np.ndarray = field(init=False)

    kind = "text"

    def __post_init__(self) -> None:
        if len(self.text) < 2:
            raise DataError(f"text '{self.name}' is empty" if not self.text else
                            f"text '{self.name}' has one character; a model needs at least two "
                            "(an input and the next character)")
        self.tokenizer = CharTokenizer.from_text(self.text)
        self.train, self.val = _split(self.tokenizer.encode(self.text))

    @property
    def test(self) -> np.ndarray:
        """Text corpora have no separate test split; the validation split serves."""
        return self.val

    @property
    def info(self) -> DataInfo:
        return DataInfo("text", (), self.tokenizer.vocab)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def with_vocab(self, vocab: str, model: str = "the model") -> TextData:
        """The same text and split, tokenised with another vocabulary (a trained model's).

        Raises:
            DataError: if the text has characters that vocabulary lacks.
        """
        if vocab == self.tokenizer.vocab:
            return self
        other = copy.copy(self)
        other.tokenizer = CharTokenizer(vocab)
        try:
            ids = other.tokenizer.encode(self.text)
        except DataError as exc:
            raise DataError(f"text '{self.name}' cannot be scored by {model}: {exc}") from None
        other.train, other.val = _split(ids)
        return other

    def train_batches(self, batch_size: int, seed: int, block_size: int = 64) -> TextBatches:
        return TextBatches(self.train, batch_size, block_size, seed, f"text '{self.name}'")


def _split(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation ids: the last ``VAL_FRACTION`` of the text validates.

    The cut is nanoGPT's, to the character: ``int(n * 0.9)`` train tokens.

    Examples:
        >>> [len(part) for part in _split(np.arange(1_115_394))]  # tiny Shakespeare
        [1003854, 111540]
    """
    n_train = min(len(ids) - 1, int(len(ids) * (1 - VAL_FRACTION)))
    return ids[:n_train], ids[n_train:]


class TextBatches:
    """Random windows of ``block_size + 1`` tokens, as a pure function of the step.

    Each row holds inputs ``[:-1]`` and next-token targets ``[1:]``. An "epoch" is the
    number of steps that draw as many tokens as the split holds.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, block_size: int, seed: int,
                 what: str = "text", stream: int = 0):
        if len(ids) < block_size + 1:
            raise DataError(
                f"{what} has {len(ids)} token{'s' * (len(ids) != 1)} in this split, fewer "
                f"than one window of block_size + 1 = {block_size + 1}; use more text or a "
                "smaller block_size"
            )
        self.ids = ids
        self.batch_size = batch_size
        self.block_size = block_size
        self.seed = seed
        self.stream = stream  # separates the training draws from the validation draws
        self.steps_per_epoch = max(1, len(ids) // (batch_size * block_size))
        self._offsets = np.arange(block_size + 1)

    def __call__(self, step: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.stream, step])
        starts = rng.integers(0, len(self.ids) - self.block_size, self.batch_size)
        return self.ids[starts[:, None] + self._offsets]  # (B, T + 1)

    def take(self, n: int, first: int = 0) -> Iterator[np.ndarray]:
        """``n`` consecutive batches starting at draw ``first``."""
        for i in range(first, first + n):
            yield self(i)


FULL_PASS_TOKENS = 16_384  # per batch of a full pass: no gradients, so memory is cheap


def windows(ids: np.ndarray, block_size: int, batch_size: int) -> Iterator[np.ndarray]:
    """Every non-overlapping window of the split, in order: a full evaluation pass.

    Batches hold ``batch_size`` windows, or more, up to ``FULL_PASS_TOKENS`` tokens: a
    pass of batch-12 calls spends most of its time in per-call overhead. The mean over
    the pass does not depend on the batching (``evaluate`` weights by batch size).
    """
    batch_size = max(batch_size, FULL_PASS_TOKENS // block_size)
    n = (len(ids) - 1) // block_size
    rows = np.arange(n)[:, None] * block_size + np.arange(block_size + 1)
    for start in range(0, n, batch_size):
        yield ids[rows[start : start + batch_size]]
