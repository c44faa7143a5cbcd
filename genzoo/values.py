"""Checks of single values, and their bounds: whole numbers, counts, seeds, devices.

Shared by the configs (``genzoo.config`` re-exports every name here) and by every
function that takes a count or a seed (``sample``, ``generate``, ``genzoo eval``).
"""

from __future__ import annotations

import numbers
import os
import re
from typing import Any

from genzoo.errors import ConfigError

DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
MAX_SEED = 2**31 - 1  # what every framework's seeding accepts (Keras on torch: int32)
# Upper bounds of the counts, far above any real run (a few thousand to a million steps),
# so that a slip such as steps=1000000000000 is refused before anything runs rather than
# training for ever, overflowing a framework's int64 step counter or allocating absurdly.
MAX_STEPS = 10**9
LIMITS: dict[str, int] = {  # TrainConfig field -> its largest value (docs/configuration.md)
    "steps": MAX_STEPS,
    "epochs": 10**6,
    "batch_size": 10**6,
    "warmup_steps": MAX_STEPS,
    "log_every": MAX_STEPS,
    "eval_every": MAX_STEPS,
    "eval_batches": MAX_STEPS,
    "checkpoint_every": MAX_STEPS,
    "keep_checkpoints": 10**6,
}
MAX_NEW_TOKENS = 10**6  # characters one generate()/stream() call (genzoo sample) may ask for
# Any whole number in a model's config (a width, a depth, a latent size): far above any
# real model, and low enough that no framework's 64-bit size arithmetic overflows.
MAX_WHOLE = 10**9


def shown(value: Any) -> str:
    """``value`` for an error message: a huge integer as its order of magnitude, so that
    the message stays one readable line.

    Examples:
        >>> shown(12), shown(10**40)
        ('12', 'about 10**40')
    """
    if is_whole(value) and abs(int(value)) >= 10**18:
        return f"about 10**{len(str(abs(int(value)))) - 1}" if int(value).bit_length() < 10_000 \
            else f"about 2**{int(value).bit_length() - 1}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_whole(value: Any, minimum: int | None = None) -> bool:
    """Whether ``value`` is a whole number (an int or NumPy integer, never a bool), at
    least ``minimum`` when given.

    Examples:
        >>> is_whole(3, 1), is_whole(True), is_whole(2.0), is_whole(-1, 0)
        (True, False, False, False)
    """
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and (minimum is None or int(value) >= minimum))


def valid_seed(seed: Any, name: str = "seed") -> int | None:
    """A seed as a Python int, refused unless it is a whole number in [0, 2**31 - 1]
    (``None`` passes).

    Examples:
        >>> import numpy as np
        >>> valid_seed(np.int64(7))
        7
        >>> valid_seed(-1)
        Traceback (most recent call last):
        ...
        genzoo.errors.ConfigError: seed must be a whole number from 0 to 2147483647, not -1
    """
    if seed is None:
        return None
    if not is_whole(seed, 0) or int(seed) > MAX_SEED:
        raise ConfigError(f"{name} must be a whole number from 0 to {MAX_SEED}, not {seed!r}")
    return int(seed)


def seconds_from_env(name: str, default: float) -> float:
    """A number of seconds from the environment variable ``name`` (``default`` if unset);
    anything but a finite number above 0 is a ``ConfigError`` naming the variable."""
    value = os.environ.get(name, str(default))
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"{name} must be a number of seconds above 0, not {value!r}")
    return seconds


def next_seed(seed: int, i: int = 1) -> int:
    """The ``i``-th seed after ``seed`` (the seeds of a run of samples), wrapping past
    ``MAX_SEED``.

    Examples:
        >>> next_seed(4), next_seed(MAX_SEED)
        (5, 0)
    """
    return (seed + i) % (MAX_SEED + 1)


def valid_count(n: Any, name: str = "n", minimum: int = 1, maximum: int | None = None) -> int:
    """A count as a Python int, refused unless it is a whole number of at least
    ``minimum`` (and at most ``maximum``).

    Examples:
        >>> valid_count(2.5)
        Traceback (most recent call last):
        ...
        genzoo.errors.ConfigError: n must be a whole number of at least 1, not 2.5
    """
    if not is_whole(n, minimum) or (maximum is not None and int(n) > maximum):
        span = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise ConfigError(f"{name} must be a whole number {span}, not {shown(n)}")
    return int(n)


def check_device(device: str) -> None:
    """Refuse a device string that is not ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    require(bool(DEVICE.fullmatch(device)), "device",
            f"must be auto, cpu, cuda, cuda:N or mps, got '{device}'")


def require(ok: bool, name: str, message: str) -> None:
    """Raise a ConfigError naming the field unless ``ok``."""
    if not ok:
        raise ConfigError(f"invalid value for '{name}': {message}")
