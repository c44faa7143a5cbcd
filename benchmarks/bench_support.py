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


def reset_peak_rss() -> float:
    """Restart the process's peak-RSS count (Linux: ``/proc/self/clear_refs``) and return
    the resident memory now, in MiB, so a benchmark can report its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _status_mib("VmRSS") or peak_rss_mib()


def peak_rss_mib() -> float:
    """The peak resident memory since the last ``reset_peak_rss`` (Linux), else since the
    process started, in MiB."""
    found = _status_mib("VmHWM")
    if found is not None:
        return found
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None
