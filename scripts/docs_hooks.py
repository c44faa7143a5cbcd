"""MkDocs hooks: the configuration reference is generated from the config classes.

`<!-- genzoo:config-reference -->` in a page becomes a table of every training field and,
for each registered model, a table of its config's fields and one of its presets, all
read from the code (field comments included), so the page cannot drift from it.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- genzoo:config-reference -->"


def _value(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _fields(cls: type) -> list[str]:
    from genzoo.config import field_docs

    rows = ["| field | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, kind, default, comment in field_docs(cls):
        kind = kind.replace(" | ", " or ")  # a pipe would split the table cell
        comment = comment.replace("|", "\\|")
        rows.append(f"| `{name}` | `{kind}` | `{_value(default)}` | {comment} |")
    return rows


def _limits() -> list[str]:
    """The upper bounds of the training counts, as ``TrainConfig.validate`` checks them."""
    from genzoo.config import LIMITS, MAX_NEW_TOKENS, MAX_STEPS, MAX_WHOLE

    bounds = ", ".join(f"`{name}` {most:,}" for name, most in LIMITS.items())
    return [f"Counts have upper bounds far above any real run, so that a slip (`--steps "
            f"1000000000000`) is refused at once with status 2 instead of training for "
            f"ever: at most {bounds}. `epochs` times the steps of one epoch may come to "
            f"at most {MAX_STEPS:,} steps. Text generation (`genzoo sample "
            f"--max-new-tokens`, `generate()`, `stream()`) asks for at most "
            f"{MAX_NEW_TOKENS:,} characters at a time. Every whole number in a model's "
            f"config (below) is at most {MAX_WHOLE:,}."]


def config_reference() -> str:
    """The generated Markdown: training fields, then each model's fields and presets."""
    from genzoo.config import TrainConfig
    from genzoo.registry import get_registry

    out = ["## Training (every model)", "", *_fields(TrainConfig), "", *_limits(), ""]
    registry = get_registry()
    for name in registry.model_names():
        specs = [registry.models[(name, b)] for b in registry.backends_of(name)]
        spec = specs[0]
        out += [f"## {name}", "", f"{spec.summary}. Config class `{spec.config.__name__}` "
                f"(backends: {', '.join(s.backend for s in specs)}; plugin "
                f"`{spec.plugin}`).", "", *_fields(spec.config), "",
                "| preset | sets |", "| --- | --- |"]
        for preset, values in spec.presets.items():
            star = " (default)" if preset == spec.default_preset else ""
            sets = ", ".join(f"`{k}={_value(v)}`" for k, v in values.items())
            out.append(f"| `{preset}`{star} | {sets} |")
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return markdown.replace(MARKER, config_reference()) if MARKER in markdown else markdown
