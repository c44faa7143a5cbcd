"""The public API is a contract: what docs/api.md and the plugin pages document, what
``genzoo`` exports, and what the plugin template imports. A name may leave it only
through a deprecation path (it stays importable, warns, and is listed in DEPRECATED)."""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path

import pytest

import genzoo

DOCS = Path(__file__).resolve().parents[1] / "docs"

# Every public name, as plugin authors and users import it. Add to it when the docs
# document a new name; a name removed from the code fails here.
PUBLIC = [
    "genzoo.Generator", "genzoo.GenzooError", "genzoo.History", "genzoo.Run",
    "genzoo.TextGenerator", "genzoo.__version__", "genzoo.callbacks.Callback",
    "genzoo.callbacks.EarlyStopping", "genzoo.callbacks.ProgressCallback",
    "genzoo.callbacks.TrainingContext", "genzoo.ema.EMA", "genzoo.tensorboard.TensorBoard",
    "genzoo.quality.SampleQuality", "genzoo.api.Run", "genzoo.api.compare",
    "genzoo.api.create", "genzoo.api.evaluate", "genzoo.api.load", "genzoo.api.resume",
    "genzoo.api.train", "genzoo.backends.keras.graph_function",
    "genzoo.backends.keras.value_and_grad", "genzoo.compare",
    "genzoo.config.MAX_NEW_TOKENS", "genzoo.config.ModelConfig",
    "genzoo.config.TrainConfig", "genzoo.config.require", "genzoo.config.resolve",
    "genzoo.create", "genzoo.data.ImageData", "genzoo.data.TextData",
    "genzoo.distributed.global_draw", "genzoo.errors.CheckpointError",
    "genzoo.errors.ConfigError", "genzoo.errors.DataError", "genzoo.errors.GenzooError",
    "genzoo.errors.LookupFailed", "genzoo.errors.PluginError", "genzoo.errors.Terminated",
    "genzoo.errors.did_you_mean", "genzoo.errors.one_line", "genzoo.evaluate",
    "genzoo.hookimpl", "genzoo.hookspecs.register_commands",
    "genzoo.hookspecs.register_datasets", "genzoo.hookspecs.register_models",
    "genzoo.imaging.save_grid", "genzoo.load", "genzoo.progress.PlainReporter",
    "genzoo.progress.Reporter", "genzoo.progress.make_reporter",
    "genzoo.protocols.Backend", "genzoo.protocols.DataInfo", "genzoo.protocols.Generator",
    "genzoo.protocols.History", "genzoo.protocols.TextGenerator",
    "genzoo.protocols.Trainer", "genzoo.registry.DatasetSpec", "genzoo.registry.ModelSpec",
    "genzoo.registry.Registry", "genzoo.resume", "genzoo.settings.with_settings",
    "genzoo.testing.CACHE_TOLERANCE",
    "genzoo.testing.CHECKS", "genzoo.testing.ConformanceError", "genzoo.testing.Context",
    "genzoo.testing.LABELS", "genzoo.testing.check_bad_config_is_refused",
    "genzoo.testing.check_builds", "genzoo.testing.check_latent_space",
    "genzoo.testing.check_learns",
    "genzoo.testing.check_listing_imports_no_framework", "genzoo.testing.check_model",
    "genzoo.testing.check_reproducible", "genzoo.testing.check_resume",
    "genzoo.testing.check_round_trip", "genzoo.testing.check_samples",
    "genzoo.testing.genzoo_check", "genzoo.testing.synthetic_images",
    "genzoo.testing.synthetic_text", "genzoo.train",
    # conditional generation
    "genzoo.conditioning.is_conditional", "genzoo.conditioning.valid_labels",
    "genzoo.conditioning.one_hot", "genzoo.conditioning.draw_labels",
    "genzoo.conditioning.balanced_labels", "genzoo.conditioning.class_rows",
    "genzoo.conditioning.check_labelled", "genzoo.conditioning.label_ends",
    "genzoo.conditioning.strip_conditions", "genzoo.conditioning.split_batch",
    "genzoo.conditioning.batch_size_of", "genzoo.conditioning.class_names",
    "genzoo.imaging.save_class_grid", "genzoo.imaging.read_class_grid",
    "genzoo.imaging.class_grid", "genzoo.backends.keras.unpack_inputs",
    "genzoo.testing.check_conditional", "genzoo.testing.CONDITIONAL_PRESET",
]

# Names on their way out: still importable, with a DeprecationWarning (name -> advice).
DEPRECATED = {
    "genzoo.data.ImageData.split": "read data.train, data.val or data.test",
    "genzoo.config.check_seed": "use genzoo.values.valid_seed",
    "genzoo.config.check_count": "use genzoo.values.valid_count",
}


def resolve(name: str) -> object:
    """Import the longest module prefix of ``name``, then read the attributes after it."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_is_importable(name) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        resolve(name)


def test_what_the_docs_document_and_genzoo_exports_is_public() -> None:
    documented = {m.group(1) for page in DOCS.rglob("*.md")
                  for m in re.finditer(r"^::: (genzoo[\w.]*)$", page.read_text(), re.M)}
    exported = {f"genzoo.{name}" for name in genzoo.__all__}
    public = set(PUBLIC)
    modules = {n for n in documented if n not in public}  # whole modules documented
    assert all(any(p.startswith(m + ".") for p in public) for m in modules), modules
    assert exported <= public


@pytest.mark.parametrize("name", sorted(DEPRECATED))
def test_a_deprecated_name_still_works_and_says_what_to_do(name) -> None:
    if name.endswith(".split"):  # a method: its warning is tested where it is called
        assert callable(resolve(name))
        return
    with pytest.warns(DeprecationWarning, match=DEPRECATED[name]):
        assert callable(resolve(name))
