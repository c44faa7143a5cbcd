"""Prints the derived figures (ratios, throughputs) after the benchmark tables."""

from __future__ import annotations

from bench_support import FIGURES


def pytest_benchmark_update_machine_info(config, machine_info) -> None:  # noqa: ANN001
    """Record the frameworks and the GPU the figures were measured with, in the JSON."""
    import importlib

    versions = {}
    for module in ("torch", "tensorflow", "keras", "numpy"):
        try:
            versions[module] = importlib.import_module(module).__version__
        except ImportError:
            pass
    machine_info["genzoo_versions"] = versions
    try:
        import torch

        if torch.cuda.is_available():
            machine_info["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001
    if FIGURES:
        terminalreporter.section("genzoo figures")
        for name, value in FIGURES:
            terminalreporter.write_line(f"{name:60s} {value}")
