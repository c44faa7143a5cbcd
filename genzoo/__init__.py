"""genzoo: a pluggable zoo of generative models in PyTorch and Keras 3.

Example:
    >>> import genzoo
    >>> model = genzoo.create("vae", preset="tiny")
    >>> model.sample(2, seed=0).shape
    (2, 8, 8, 1)
"""

from __future__ import annotations

from genzoo.version import __version__  # noqa: E402

from genzoo import _tfenv  # noqa: E402,F401  (first: before anything loads TensorFlow)
from genzoo.hookspecs import hookimpl  # noqa: E402
from genzoo.api import Run, compare, create, evaluate, load, resume, train  # noqa: E402
from genzoo.errors import GenzooError  # noqa: E402
from genzoo.protocols import Generator, History, TextGenerator  # noqa: E402

__all__ = ["Generator", "GenzooError", "History", "Run", "TextGenerator", "__version__",
           "compare", "create", "evaluate", "hookimpl", "load", "resume", "train"]
