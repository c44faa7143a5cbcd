"""Score a `genzoo sample --label all` grid with a classifier that is not genzoo's.

    GENZOO_DATA_DIR=/path/to/data python scripts/check_class_grid.py GRID.png \\
        [--data mnist] [--epochs 5]

The classifier is a fully connected network on raw pixels (784-512-256-10, ReLU,
dropout), trained here on the dataset's whole training file with its own seed and
recipe: another architecture, other features and other training than the evaluation's
convolutional domain classifier. The grid's cells are read back from the PNG with the
layout genzoo stores in it (`genzoo.imaging.read_class_grid`), so the check sees the
pixels a user sees. It prints the independent classifier's accuracy on the cells, that
of genzoo's domain classifier on the same cells, and their agreement.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np


def train_mlp(x: np.ndarray, y: np.ndarray, classes: int, epochs: int, seed: int = 7):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(x[0].size, 512), nn.ReLU(), nn.Dropout(0.2),
                        nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, classes))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for epoch in range(epochs):
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(len(x)))
        net.train()
        for start in range(0, len(x) - 127, 128):
            idx = order[start:start + 128]
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def predict(net, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(x))).argmax(1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("grid")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    from genzoo.data import load_dataset
    from genzoo.imaging import read_class_grid
    from genzoo.metrics.classifier import load_or_train

    data: Any = load_dataset(args.data, "image")
    cells, labels = read_class_grid(args.grid)
    x = np.concatenate([data.train, data.val])
    y = np.concatenate([data.train_labels, data.val_labels])
    net = train_mlp(x, y, int(y.max()) + 1, args.epochs)
    test_accuracy = float(np.mean(predict(net, data.test) == data.test_labels))
    independent = predict(net, cells)
    _, probs = load_or_train(data).features(cells)
    domain = probs.argmax(1)
    print(json.dumps({
        "grid": args.grid, "cells": len(cells),
        "independent_classifier": {"test_accuracy": round(test_accuracy, 4),
                                   "accuracy_on_grid": round(float((independent == labels).mean()), 4)},
        "domain_classifier_accuracy_on_grid": round(float((domain == labels).mean()), 4),
        "verdicts_agree": round(float((independent == domain).mean()), 4),
    }, indent=2))


if __name__ == "__main__":
    main()
