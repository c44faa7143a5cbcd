"""Prints the derived figures (ratios, throughputs) after the benchmark tables."""

from __future__ import annotations

from bench_support import FIGURES


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if FIGURES:
        terminalreporter.section("genzoo figures")
        for name, value in FIGURES:
            terminalreporter.write_line(f"{name:60s} {value}")
