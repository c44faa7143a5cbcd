"""Rebuild the feature extractors that ship with genzoo (``genzoo/metrics/extractors``).

``genzoo eval`` measures the images of MNIST and Fashion-MNIST models in the feature
space of a small classifier trained on the dataset itself. Deterministic training gives
the same weights on one machine, not on every CPU, so the weights ship with the package
and this script is how they were made: the recipe of ``genzoo.metrics.classifier``
(``RECIPE``), on one CPU thread, on genzoo's training file of each dataset. It writes
``NAME.safetensors`` (float32 tensors) and ``NAME.json`` (dataset, sha256 of the
training images as ``data.checksum`` computes it, classes, test accuracy,
``tensors_sha256``, recipe), each atomically.

Usage::

    GENZOO_DATA_DIR=../shared/data .venv/bin/python scripts/build_extractors.py
    .venv/bin/python scripts/build_extractors.py mnist --out /tmp/extractors  # elsewhere

Rebuilt weights change every figure measured with them: update the digests and the
figures in docs/evaluation.md and on the model pages.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genzoo.checkpoint import atomic_write_json, save_tensors  # noqa: E402
from genzoo.data import load_dataset  # noqa: E402
from genzoo.metrics.classifier import SHIPPED, build  # noqa: E402

DATASETS = ("mnist", "fashion-mnist")


class _Printer:
    def message(self, text: str) -> None:
        print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*",
                        metavar="DATASET", help=f"any of {', '.join(DATASETS)} (default: both)")
    parser.add_argument("--out", type=Path, default=SHIPPED,
                        help="folder to write into (default: the package's extractors/)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.datasets) - set(DATASETS))
    if unknown:
        parser.error(f"no shipped extractor for {', '.join(unknown)} "
                     f"(choose from {', '.join(DATASETS)})")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.datasets or DATASETS:
        data = load_dataset(name, "image")
        t0 = time.perf_counter()
        clf, tensors = build(data, _Printer())
        save_tensors(args.out / f"{name}.safetensors", tensors)
        atomic_write_json(args.out / f"{name}.json", clf.info)
        print(f"{name}: test accuracy {clf.info['test_accuracy']:.2%}, tensors_sha256 "
              f"{clf.info['tensors_sha256']}, {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
