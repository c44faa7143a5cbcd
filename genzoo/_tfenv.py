"""TensorFlow's environment, set when genzoo is imported, before anything imports TensorFlow.

TensorFlow loaded afterwards (by a plugin's Keras module, or by the program's own
``import tensorflow`` after ``import genzoo``) uses its plain CPU kernels, not oneDNN's:
their results do not depend on thread scheduling, which exact resume needs (and oneDNN's
start-up banner goes with them). ``TF_CPP_MIN_LOG_LEVEL=2`` hides TensorFlow's C++ info
and warning logs for the process. A value the user set wins. No framework is imported.
"""

from __future__ import annotations

import os
import sys

# Too late if TensorFlow is already loaded (a notebook that imported it first): training
# says so (``genzoo.backends.keras.make_trainer``).
ONEDNN_ALREADY_ON = ("tensorflow" in sys.modules
                     and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
