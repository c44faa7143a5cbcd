"""Turn pytest-benchmark JSON into the Markdown tables of the docs' Benchmarks page.

    python -m pytest benchmarks --benchmark-json=bench.json
    python benchmarks/report.py bench.json > docs/benchmarks/results-cpu.md

The table records the machine, the framework versions and the date, so every committed
figure carries its provenance.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

EXTRA = [("images_per_s", "images/s", "{:,.0f}"), ("tokens_per_s", "tokens/s", "{:,.0f}"),
         ("first_step_s", "first step", "{:.2f} s"), ("step_ms", "ms/step", "{:.1f}"),
         ("peak_rss_mb", "peak RSS (process)", "{:,.0f} MiB"),  # older JSON files
         ("peak_rss_mib", "peak RSS", "{:,.0f} MiB"),
         ("rss_increase_mib", "RSS added", "{:,.0f} MiB"),
         ("cuda_peak_allocated_mb", "CUDA peak", "{:,.0f} MiB"),
         ("model_tflops", "model TFLOP/s", "{:.3f}"), ("mfu", "MFU", "{:.1%}"),
         ("tokens_per_s_cached", "generate, cached", "{:,.0f} tok/s"),
         ("tokens_per_s_uncached", "generate, uncached", "{:,.0f} tok/s"),
         ("throughput_ratio", "genzoo / hand-written", "{:.3f}"),
         ("genzoo_step_ms", "genzoo ms/step", "{:.1f}"),
         ("handwritten_step_ms", "hand-written ms/step", "{:.1f}"),
         ("fraction", "data time / step time", "{:.3f}")]


def _versions() -> dict[str, str]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    found = {}
    for module in ("torch", "tensorflow", "keras", "numpy"):
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            pass
    return found


def machine(data: dict[str, Any]) -> str:
    info = data.get("machine_info", {})
    cpu = info.get("cpu", {})
    lines = [
        f"- Date: {data.get('datetime', '?')[:19].replace('T', ' ')} UTC",
        f"- CPU: {cpu.get('brand_raw', platform.processor() or '?')}, "
        f"{cpu.get('count', '?')} cores",
        f"- Python {info.get('python_version', platform.python_version())}; "
        + (", ".join(f"{k} {v}" for k, v in info["genzoo_versions"].items())
           if info.get("genzoo_versions") else
           ", ".join(f"{k} {v}" for k, v in _versions().items())
           + " (not recorded: this machine's versions)"),
    ]
    if info.get("gpu"):
        lines.insert(2, f"- GPU: {info['gpu']}")
    commit = data.get("commit_info", {})
    if commit.get("id"):
        lines.append(f"- genzoo commit {commit['id'][:12]}")
    return "\n".join(lines)


def table(benchmarks: list[dict[str, Any]]) -> str:
    rows = ["| benchmark | median | figures |", "| --- | ---: | --- |"]
    for bench in sorted(benchmarks, key=lambda b: b["name"]):
        extra = bench.get("extra_info", {})
        figures = "; ".join(f"{label} {fmt.format(extra[key])}" for key, label, fmt in EXTRA
                            if key in extra)
        rows.append(f"| `{bench['name']}` | {bench['stats']['median'] * 1e3:,.1f} ms | "
                    f"{figures} |")
    return "\n".join(rows)


def main(path: str) -> None:
    data = json.loads(Path(path).read_text())
    print(machine(data))
    print()
    print(table(data["benchmarks"]))


if __name__ == "__main__":
    main(sys.argv[1])
