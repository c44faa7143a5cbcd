"""The examples in the public docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["genzoo", "genzoo.api", "genzoo.config", "genzoo.values", "genzoo.schedule",
           "genzoo.sampling", "genzoo.data", "genzoo.data.files", "genzoo.data.text",
           "genzoo.metrics.distances", "genzoo.metrics.text", "genzoo.comparison",
           "genzoo.checkpoint", "genzoo.files", "genzoo.backends.common", "genzoo.conditioning",
           "genzoo.metrics.conditional"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if name != "genzoo.api":
        assert result.attempted > 0, f"{name} has no examples"
