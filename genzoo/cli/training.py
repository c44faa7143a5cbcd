"""``genzoo train``: a new run, a resumed one, or either data-parallel (``--nproc``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from genzoo.cli.group import PathParam, cli
from genzoo.config import LIMITS
from genzoo.errors import GenzooError


@cli.command()
@click.argument("model")
@click.option("--backend", default=None,
              help="torch or keras [torch, or the model's only backend].")
@click.option("--preset", default=None, help="A preset name (see `genzoo list`).")
@click.option("--data", default=None, help="A dataset name (see `genzoo datasets`) or path.")
@click.option("--epochs", type=int, default=None,
              help="Passes over the training split (replaces the preset's --steps); at "
                   f"most {LIMITS['epochs']:,}.")
@click.option("--steps", type=int, default=None,
              help="Optimisation steps (give this or --epochs, not both); at most "
                   f"{LIMITS['steps']:,}.")
@click.option("--batch-size", type=int, default=None,
              help=f"Examples per step, at most {LIMITS['batch_size']:,} [the preset's].")
@click.option("--lr", type=float, default=None, help="Peak learning rate.")
@click.option("--seed", type=int, default=None,
              help="Seeds weights, data order and samples [0].")
@click.option("--device", default=None, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--compile", "compile_", is_flag=True, default=None,
              help="torch.compile the model (torch); XLA (Keras on TensorFlow).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=None,
              help="auto: bf16 autocast on a CUDA GPU that has it, fp32 elsewhere; bf16: "
                   "autocast on any device (torch models) [auto].")
@click.option("--checkpoint-every", type=int, default=None, help="Steps between checkpoints.")
@click.option("--out", type=PathParam(path_type=str), default=None,
              help="Run directory [default: runs/<model>-<backend>-<UTC time>].")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override any model or training config field; repeatable.")
@click.option("--resume", type=PathParam(path_type=Path), default=None,
              help="Continue the run in this directory from its latest checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace a run already in --out.")
@click.option("--allow-changes", is_flag=True,
              help="With --resume: accept a config that differs from the saved one.")
@click.option("--nproc", type=click.IntRange(min=1), default=None,
              help="Train data-parallel in N processes (launches torchrun for you).")
@click.option("--callback", "callbacks", multiple=True, metavar="MODULE:NAME",
              help="A genzoo.callbacks.Callback to train with, as module:Name or "
                   "module:Name(key=value, ...); repeatable. A resumed run keeps its own "
                   "unless given new ones.")
@click.option("--log", "loggers", multiple=True, type=click.Choice(["tensorboard"]),
              help="Also log to TensorBoard, under RUN/tensorboard (needs the "
                   "'tensorboard' extra).")
def train(model: str, backend: str | None, preset: str | None, data: str | None, epochs: int | None,
          steps: int | None, batch_size: int | None, lr: float | None, seed: int | None,
          device: str | None, compile_: bool | None, precision: str | None,
          checkpoint_every: int | None, out: str | None,
          assignments: tuple[str, ...], resume: Path | None, overwrite: bool,
          allow_changes: bool, nproc: int | None, callbacks: tuple[str, ...],
          loggers: tuple[str, ...]) -> None:
    """Train MODEL and write a run directory.

    Examples:

    \b
        genzoo train vae
        genzoo train vae --backend keras --data mnist --epochs 10
        genzoo train vae --preset conv --set latent_dim=16 --out runs/conv16
        genzoo train gan --set ema_decay=0.999 --log tensorboard
        genzoo train vae --callback "genzoo.callbacks:EarlyStopping(patience=2)"
    """
    import genzoo.api as api
    from genzoo.config import parse_assignments
    from genzoo.progress import make_reporter

    if resume is not None:  # a resumed run keeps its dataset, preset and folder
        given = [flag for flag, value in (("--data", data), ("--preset", preset),
                                          ("--out", out), ("--overwrite", overwrite)) if value]
        if given:
            raise GenzooError(f"--resume continues {resume} with its own dataset, preset and "
                              f"folder; drop {', '.join(given)} (other settings can change "
                              "with --allow-changes)")
        saved = _saved_model(resume)
        if model != saved[0] or backend not in (None, saved[1]):
            raise GenzooError(f"{resume} holds a {saved[0]} ({saved[1]}) run, not {model}"
                              + (f" ({backend})" if backend else ""))
    out_path = Path(out) if out is not None else None
    overrides: dict[str, Any] = parse_assignments(assignments)
    import inspect

    arguments = {p.name for f in (api.train, api.resume)  # not config fields: --set would
                 for p in inspect.signature(f).parameters.values()  # pass them twice
                 if p.kind is not p.VAR_KEYWORD}
    options = {p.name for p in click.get_current_context().command.params}
    for key in overrides.keys() & arguments:
        raise GenzooError(f"--set {key}=...: {key} is not a config field"
                          + (f"; use --{key.replace('_', '-')}" if key in options else ""))
    flags = {"epochs": epochs, "steps": steps, "batch_size": batch_size, "lr": lr,
             "seed": seed, "device": device, "checkpoint_every": checkpoint_every,
             "compile": compile_ or None, "precision": precision}
    overrides.update({k: v for k, v in flags.items() if v is not None})
    overrides = api.length_overrides(overrides)  # --epochs replaces a preset's steps
    if nproc is not None and nproc > 1:
        # Validated here, in one process; then torchrun starts N copies of this command.
        from genzoo.launcher import check_launch, launch

        planned = (api.resume_plan(resume, allow_changes=allow_changes, **overrides)
                   if resume is not None else
                   api.plan(model, backend, preset, data=data, **overrides))
        check_launch(planned, nproc, resume=resume, out=out_path, overwrite=overwrite)
        return launch(nproc, None if resume is not None else
                      out_path or api.default_out(model, planned.spec.backend))
    chosen = [*callbacks, *(LOGGERS[name] for name in loggers)]
    reporter = make_reporter()
    if resume is not None:
        run = api.resume(resume, reporter=reporter, allow_changes=allow_changes,
                         callbacks=chosen or None, **overrides)
    else:
        run = api.train(model, backend, preset, data=data, out=out_path, overwrite=overwrite,
                        reporter=reporter, callbacks=chosen, **overrides)
    from genzoo import distributed

    if distributed.world().is_main:
        test = run.metrics.get("test", {})
        click.echo(f"run: {run.path}")
        click.echo(f"test: {'  '.join(f'{k} {v:.4g}' for k, v in test.items())}")
    distributed.shutdown()


LOGGERS = {"tensorboard": "genzoo.tensorboard:TensorBoard"}  # --log NAME: its callback


def _saved_model(run: Path) -> tuple[str, str]:
    from genzoo.rundir import RunDir

    saved = RunDir(run).read_config()
    return saved["model"], saved["backend"]
