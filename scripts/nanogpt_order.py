"""Train genzoo's PyTorch GPT on nanoGPT's random windows, to compare with nanoGPT.

nanoGPT's ``train.py`` seeds torch's global generator once and draws everything from it:
the initial weights, then each training batch's random windows and, at every evaluation,
20 batches of the training split and 20 of the validation split. ``genzoo train`` makes
the weights the same way, but draws each step's windows from a stream of its own (a pure
function of the seed and the step, so a resumed run sees the same batches): for one
seed, the two train on different windows.

This script trains the ``nanogpt-cpu`` recipe with genzoo's model, trainer (optimiser
groups, gradient clipping, training step) and evaluation, and two switches:

- ``--windows nanogpt`` (default) draws the windows in nanoGPT's order, ``genzoo`` as
  ``genzoo train`` does;
- ``--schedule nanogpt`` (default) uses nanoGPT's learning-rate formula, ``genzoo``
  genzoo's (which reaches the full rate and the floor one step earlier).

With both on ``nanogpt`` and ``--seed 1337``, the seed nanoGPT's ``train.py`` hard-codes,
it prints the log nanoGPT prints for this recipe, to the last digit (step 0: train loss
4.1676, val loss 4.1649; step 2000: train loss 1.7648, val loss 1.8857). With both on
``genzoo`` it prints the validation losses ``genzoo train transformer --data
tiny-shakespeare --seed S`` logs. docs/models/transformer.md has the study.

    GENZOO_DATA_DIR=../shared/data python scripts/nanogpt_order.py [--seed 1337] [--until STEP]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import numpy as np


def nanogpt_lr(it: int, total: int, cfg: Any) -> float:
    """nanoGPT's ``get_lr``: warm-up to ``lr`` over ``warmup_steps`` + 1 iterations, then a
    cosine that reaches ``min_lr`` at iteration ``total``."""
    if it < cfg.warmup_steps:
        return float(cfg.lr * (it + 1) / (cfg.warmup_steps + 1))
    if it > total:
        return float(cfg.min_lr)
    ratio = (it - cfg.warmup_steps) / (total - cfg.warmup_steps)
    return float(cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.lr - cfg.min_lr))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1337, help="default: nanoGPT's, 1337")
    parser.add_argument("--windows", choices=("nanogpt", "genzoo"), default="nanogpt")
    parser.add_argument("--schedule", choices=("nanogpt", "genzoo"), default="nanogpt")
    parser.add_argument("--until", type=int, default=None,
                        help="stop after the evaluation at this step (the schedule is unchanged)")
    parser.add_argument("--data", default="tiny-shakespeare")
    args = parser.parse_args(argv)

    import torch

    from genzoo.api import plan
    from genzoo.backends.torch import build, make_trainer
    from genzoo.data import TextBatches, load_dataset
    from genzoo.schedule import lr_at
    from genzoo.training import evaluate

    p = plan("transformer", "torch", "nanogpt-cpu", data=args.data, seed=args.seed, device="cpu")
    cfg, block = p.train_config, p.model_config.block_size
    n_eval = cfg.eval_batches or 20  # as genzoo's session reads it
    total = cfg.steps
    assert total is not None  # the preset's 2,000
    until = total if args.until is None else min(args.until, total)
    data = load_dataset(p.data, "text")
    generator = build(p.spec, p.model_config, data.info, seed=args.seed, device="cpu")
    trainer = make_trainer(generator, cfg)  # build() seeded torch, then made the weights

    def drawn(split: np.ndarray) -> np.ndarray:
        """nanoGPT's ``get_batch``: windows at ``torch.randint`` starts, from the one
        generator, ``block + 1`` tokens each (inputs and next-token targets)."""
        starts = torch.randint(len(split) - block, (cfg.batch_size,)).numpy()
        return split[starts[:, None] + np.arange(block + 1)]

    if args.windows == "nanogpt":
        def estimates(step: int) -> dict[str, float]:
            return {name: evaluate(trainer, (drawn(split) for _ in range(n_eval)))["loss"]
                    for name, split in (("train", data.train), ("val", data.val))}
        upcoming = drawn(data.train)

        def batch(step: int) -> np.ndarray:
            nonlocal upcoming
            current, upcoming = upcoming, drawn(data.train)  # drawn before the step, as there
            return current
    else:  # what genzoo's session draws: training windows by step, fresh validation windows
        train = TextBatches(data.train, cfg.batch_size, block, args.seed)
        val = TextBatches(data.val, cfg.batch_size, block, args.seed, stream=1)

        def estimates(step: int) -> dict[str, float]:
            return {"val": evaluate(trainer, val.take(n_eval, first=step * n_eval))["loss"]}

        def batch(step: int) -> np.ndarray:
            return train(step)

    t0 = time.perf_counter()
    best = (math.inf, 0)
    for step in range(until + 1):
        if step % cfg.eval_every == 0 or step == until:
            losses = estimates(step)
            print(f"step {step}: " + ", ".join(f"{k} loss {v:.4f}" for k, v in losses.items()),
                  flush=True)
            best = min(best, (losses["val"], step))
        if step == until:
            break
        trainer.set_lr(nanogpt_lr(step, total, cfg) if args.schedule == "nanogpt"
                       else lr_at(step, total, cfg))
        trainer.train_step(batch(step))
    print(f"best val loss {best[0]:.4f} at step {best[1]}; {until} steps in "
          f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
