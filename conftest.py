"""The environment every test and benchmark runs in (loaded by pytest for both trees).

Nothing writes to the home directory, Keras's backend is chosen before anything imports
Keras, and the real datasets come from ``../shared/data`` when it is there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SHARED_DATA = ROOT.parent / "shared" / "data"

_HOME = Path(tempfile.gettempdir()) / "genzoo-test-home"
os.environ.setdefault("KERAS_HOME", str(_HOME / "keras"))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ["XDG_CACHE_HOME"] = str(_HOME / "cache")
os.environ.pop("GENZOO_LOAD_PLUGINS", None)
if SHARED_DATA.is_dir():
    os.environ.setdefault("GENZOO_DATA_DIR", str(SHARED_DATA))
