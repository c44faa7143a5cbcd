"""Shared benchmark settings, and derived figures (ratios) printed at the end of a run.

``pytest benchmarks`` runs the full suite; ``GENZOO_BENCH_SMOKE=1`` runs every benchmark
once at tiny sizes (CI does this, so no benchmark can rot).
"""

from __future__ import annotations

import os

SMOKE = os.environ.get("GENZOO_BENCH_SMOKE") == "1"
FIGURES: list[tuple[str, str]] = []


def record(name: str, value: str) -> None:
    """Keep a derived figure (a ratio, a throughput) for the end-of-run summary."""
    FIGURES.append((name, value))
