"""User-facing errors.

Every error a user can cause (an unknown name, a bad value, a broken file) is a
``GenzooError``. The CLI prints its message on one line and exits with status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GenzooError(Exception):
    """An error caused by the user's input, reported without a traceback."""

    exit_code = 2


class ConfigError(GenzooError):
    """A configuration value, preset or override is invalid."""


class LookupFailed(GenzooError):
    """An unknown model, backend, preset or dataset name."""


class DataError(GenzooError):
    """A dataset is missing, corrupt or unusable."""


class CheckpointError(GenzooError):
    """A run directory or checkpoint cannot be read or written."""


class PluginError(GenzooError):
    """A plugin broke the plugin contract (for example a duplicate registration)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM stopped the process at once, as a Ctrl-C would; the CLI exits with 143."""


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines too) as one space."""
    return " ".join(str(text).split())


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return a hint such as ``" Did you mean 'vae'? (choose from gan, vae)"``.

    The hint starts with a space so callers can append it to a sentence.
    """
    options = sorted(set(choices))
    by_lower = {option.lower(): option for option in options}  # `VAE` finds `vae`
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    close = [by_lower[c] for c in close]
    hint = f" Did you mean '{close[0]}'?" if close else ""
    if options:
        hint += f" (choose from {', '.join(options)})"
    return hint
