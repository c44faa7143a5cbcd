"""TensorFlow's environment, set when genzoo is imported, before anything imports TensorFlow.

A Keras model (a plugin's module, or the program's own ``import tensorflow`` after
``import genzoo``) then finds TensorFlow's C++ banner quiet and its plain CPU kernels
selected: their results do not depend on thread scheduling, which exact resume needs.
A value the user set wins. No framework is imported here.
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
