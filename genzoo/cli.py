"""The ``genzoo`` command line.

``genzoo --help``, ``list``, ``datasets`` and ``plugins`` import no deep-learning
framework: the registry holds import paths, and commands import the backends lazily.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import click

from genzoo.version import __version__
from genzoo.config import LIMITS, MAX_NEW_TOKENS, MAX_SEED, next_seed
from genzoo.errors import GenzooError, Terminated, one_line
from genzoo.sampling import TEMPERATURE, TOP_K

BACKEND_CHOICES = ("torch", "keras")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
# Click 8.2+ raises this for a group called without a command; 8.1 prints the help itself.
NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class PathParam(click.Path):
    """A path that may not be empty: ``""`` would silently mean the current folder."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if value == "":
            self.fail("an empty path; name a file or folder ('.' for this one)", param, ctx)
        return super().convert(value, param, ctx)


def _given(name: str) -> bool:
    """Whether the current command's option ``name`` was given, not left at its default."""
    source = click.get_current_context().get_parameter_source(name)
    return source is not None and source != click.core.ParameterSource.DEFAULT


def _registry() -> Any:
    from genzoo.registry import get_registry

    return get_registry()


def _table(columns: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # pipes and files get whole lines, not wrapped cells
        console = Console(width=1000)
    console.print(table)


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2))


class PluginGroup(click.Group):
    """The top-level group: plugin commands are loaded only when one is asked for.

    ``genzoo --help`` and the core commands never import a plugin, so a slow plugin
    cannot slow them; an unknown command name loads the plugins and looks again.
    """

    plugins_loaded = False

    def load_plugin_commands(self) -> None:
        if not self.plugins_loaded:
            self.plugins_loaded = True
            from genzoo.registry import register_commands

            register_commands(self)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None:
            self.load_plugin_commands()
            found = super().get_command(ctx, cmd_name)
        return found


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Plugins may add commands: `genzoo plugins` lists what is installed.")
@click.version_option(__version__, prog_name="genzoo")
def cli() -> None:
    """genzoo: a zoo of generative models (VAE, GAN, Transformer) in PyTorch and Keras.

    Start with:

    \b
        genzoo list                 the models and their presets
        genzoo train vae            train a VAE on the bundled digits (seconds)
        genzoo sample RUN --n 64    draw samples from a trained run
    """


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_models(as_json: bool) -> None:
    """List the registered models, their backends and presets."""
    registry = _registry()
    rows = []
    for name in registry.model_names():
        backends = registry.backends_of(name)
        spec = registry.models[(name, backends[0])]
        rows.append({
            "name": name, "backends": backends, "kind": spec.kind,
            "presets": list(spec.presets), "default_preset": spec.default_preset,
            "default_dataset": spec.default_dataset, "plugin": spec.plugin,
            "summary": spec.summary,
        })
    if as_json:
        return _echo_json(rows)
    _table(["model", "backends", "kind", "presets (* default)", "default data", "plugin"], [
        [r["name"], ", ".join(r["backends"]), r["kind"],
         ", ".join(p + ("*" if p == r["default_preset"] else "") for p in r["presets"]),
         r["default_dataset"], r["plugin"]] for r in rows])


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def datasets(as_json: bool) -> None:
    """List the datasets models can train on, and where each would come from.

    Status: bundled (ships with an installed package), local (in GENZOO_DATA_DIR),
    cached (in the user cache), or download (fetched on first use).
    """
    from genzoo.data.sources import status

    rows = []
    for spec in sorted(_registry().datasets.values(), key=lambda s: (s.kind, s.name)):
        available = "bundled" if spec.offline else status(spec.folder, spec.files)
        vocab = spec.vocab_size
        if spec.kind == "text" and vocab is None and spec.offline:
            from genzoo.data import load_dataset

            tokenizer = getattr(load_dataset(spec.name), "tokenizer", None)
            vocab = len(tokenizer) if tokenizer is not None else None
        rows.append({"name": spec.name, "kind": spec.kind,
                     "shape": list(spec.shape) if spec.shape else None, "vocab_size": vocab,
                     "source": spec.source, "status": available, "license": spec.license,
                     "summary": spec.summary, "plugin": spec.plugin})
    if as_json:
        return _echo_json(rows)
    _table(["dataset", "kind", "shape / vocab", "status", "source", "licence"], [
        [r["name"], r["kind"],
         "x".join(map(str, r["shape"])) if r["shape"] else f"{r['vocab_size'] or '?'} chars",
         r["status"], r["source"], r["license"]] for r in rows])


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("-v", "--verbose", is_flag=True, help="Show the traceback of load errors.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool, verbose: bool) -> None:
    """List loaded plugins: distribution, version, hooks, what they registered (models,
    datasets, commands) and load errors."""
    infos = _registry().plugins
    group = ctx.find_root().command
    if isinstance(group, PluginGroup):
        group.load_plugin_commands()  # their commands, and any error adding them
    if as_json:
        return _echo_json([{
            "name": i.name, "module": i.module, "distribution": i.distribution,
            "version": i.version, "hooks": i.hooks, "models": i.models,
            "datasets": i.datasets, "commands": i.commands, "error": i.error,
            **({"traceback": i.traceback} if verbose else {}),
        } for i in infos])
    _table(["plugin", "distribution", "version", "hooks", "registered", "error"], [
        [i.name, i.distribution, i.version, ", ".join(i.hooks),
         ", ".join(i.models + i.datasets + [f"genzoo {c}" for c in i.commands]),
         i.error or ""] for i in infos])
    if verbose:
        for i in infos:
            if i.traceback:
                click.echo(f"\n--- {i.name} ---\n{i.traceback}", err=True)


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
def train(model: str, backend: str | None, preset: str | None, data: str | None, epochs: int | None,
          steps: int | None, batch_size: int | None, lr: float | None, seed: int | None,
          device: str | None, compile_: bool | None, precision: str | None,
          checkpoint_every: int | None, out: str | None,
          assignments: tuple[str, ...], resume: Path | None, overwrite: bool,
          allow_changes: bool, nproc: int | None) -> None:
    """Train MODEL and write a run directory.

    Examples:

    \b
        genzoo train vae
        genzoo train vae --backend keras --data mnist --epochs 10
        genzoo train vae --preset conv --set latent_dim=16 --out runs/conv16
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
        # Validate here, in one process, then let torchrun start N copies of this command.
        from genzoo.backends import KERAS_MULTIPROCESS, keras_backend_name

        planned = (api.resume_plan(resume, allow_changes=allow_changes, **overrides)
                   if resume is not None else
                   api.plan(model, backend, preset, data=data, **overrides))
        if planned.spec.backend == "keras" and keras_backend_name() != "torch":
            raise GenzooError(KERAS_MULTIPROCESS)
        if resume is not None:
            from genzoo.checkpoint import RunDir

            done = api.finished_before_start(RunDir(resume), planned)
            if done is not None:
                raise done
        # Refused here, once, rather than by every rank with torchrun's report around it.
        batch = planned.train_config.batch_size
        if batch % nproc:
            raise GenzooError(f"the batch of {batch} does not split evenly over {nproc} "
                              f"processes; choose a multiple of {nproc}")
        if out_path is not None and out_path.exists() and not out_path.is_dir():
            raise GenzooError(f"--out {out_path} is a file; give a folder for the run")
        if resume is None and not overwrite and out_path is not None:
            from genzoo.checkpoint import RunDir

            if RunDir(out_path).holds_run():
                raise GenzooError(f"{out_path} already holds a run; replace it (--overwrite) "
                                  f"or continue it (--resume {out_path})")
        return _launch_torchrun(nproc, None if resume is not None else
                                out_path or api.default_out(model, planned.spec.backend))
    reporter = make_reporter()
    if resume is not None:
        run = api.resume(resume, reporter=reporter, allow_changes=allow_changes, **overrides)
    else:
        run = api.train(model, backend, preset, data=data, out=out_path, overwrite=overwrite,
                        reporter=reporter, **overrides)
    from genzoo import distributed

    if distributed.world().is_main:
        test = run.metrics.get("test", {})
        click.echo(f"run: {run.path}")
        click.echo(f"test: {'  '.join(f'{k} {v:.4g}' for k, v in test.items())}")
    distributed.shutdown()


def _launch_torchrun(nproc: int, out: Path | None) -> None:
    """Re-run this command under ``torchrun --standalone --nproc_per_node N``."""
    import subprocess

    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    if out is not None and "--out" not in args:  # one run directory for every rank
        args += ["--out", str(out)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "genzoo", *args]
    proc = subprocess.Popen(command)
    # The launcher outlives its ranks, never the other way round. A terminal's Ctrl-C
    # reaches torchrun and the ranks directly (they stop together and checkpoint), so the
    # launcher only waits; a SIGTERM sent to the launcher alone is passed to torchrun,
    # which passes it to the ranks.
    stopped: list[signal.Signals] = []

    def on_signal(signum: int, frame: Any) -> None:
        stopped.append(signal.Signals(signum))
        if signum == signal.SIGTERM:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopped or code in (130, 143, -signal.SIGINT, -signal.SIGTERM):
        # The ranks stopped together and rank 0 said where (interrupted at step N).
        sig = stopped[0] if stopped else (signal.SIGTERM if code in (143, -signal.SIGTERM)
                                          else signal.SIGINT)
        name = "Ctrl-C" if sig == signal.SIGINT else sig.name
        click.echo(f"genzoo: distributed training stopped ({name}); continue it with "
                   "--resume and the same --nproc", err=True)
        raise SystemExit(128 + sig)
    if code != 0:
        raise GenzooError(f"distributed training failed (torchrun exited with {code}); "
                          "the failing rank's error is above")


def _saved_model(run: Path) -> tuple[str, str]:
    from genzoo.checkpoint import RunDir

    saved = RunDir(run).read_config()
    return saved["model"], saved["backend"]


@cli.command()
@click.argument("run", type=PathParam(path_type=Path))
@click.option("--n", "n", type=click.IntRange(1, 10_000), default=None,
              help="How many samples, at most 10,000 [images: 64, --interpolate: 10, "
                   "text: 1].")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True,
              help="Seed of the samples: the same seed draws the same samples.")
@click.option("--out", type=PathParam(path_type=Path), default=None,
              help="Output file, .png for images [images: RUN/sample-seed<SEED>.png; "
                   "text: stdout only].")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:N or mps (torch models).")
@click.option("--interpolate", is_flag=True,
              help="Images: a latent interpolation strip from seed SEED to SEED+1 "
                   "(N images) instead of a grid.")
@click.option("--prompt", default=None, help="Text: the text to continue [a newline].")
@click.option("--max-new-tokens", type=click.IntRange(1, MAX_NEW_TOKENS), default=500,
              show_default=True,
              help=f"Text: characters to generate, at most {MAX_NEW_TOKENS:,}.")
@click.option("--temperature", type=click.FloatRange(min=0.0), default=TEMPERATURE,
              show_default=True,
              help="Text: softmax temperature; 0 picks the likeliest character.")
@click.option("--top-k", type=click.IntRange(min=1), default=TOP_K, show_default=True,
              help="Text: sample among the K likeliest characters.")
def sample(run: Path, n: int | None, seed: int, out: Path | None, device: str,
           interpolate: bool, prompt: str | None, max_new_tokens: int, temperature: float,
           top_k: int) -> None:
    """Draw samples from a trained RUN: an image grid, or text streamed to the terminal.

    Examples:

    \b
        genzoo sample runs/vae-torch-20261128-131650 --n 64 --seed 1 --out grid.png
        genzoo sample runs/gan-torch-20261128-140000 --interpolate --n 10
        genzoo sample runs/transformer-torch-20261128-150000 --prompt "ROMEO:" \\
            --max-new-tokens 500 --temperature 0.8 --top-k 40
    """
    from genzoo.checkpoint import RunDir

    kind = RunDir(run).read_config()["data_info"]["kind"]  # errors before the framework loads
    if kind == "text" and interpolate:
        raise GenzooError("--interpolate applies to image models")
    for name in ("prompt", "max_new_tokens", "temperature", "top_k"):
        if kind != "text" and _given(name):
            raise GenzooError(f"--{name.replace('_', '-')} applies to text models")
    if not math.isfinite(temperature):
        raise GenzooError(f"--temperature must be a finite number of at least 0, not {temperature}")
    if interpolate and n == 1:
        raise GenzooError("--interpolate needs --n of at least 2 (the two ends)")
    if out is not None:
        _check_output_file(out, ".png" if kind != "text" else None, run)
    import genzoo

    generator: Any = genzoo.load(run, device=device)  # image generators can interpolate
    if kind == "text":
        return _sample_text(generator, n or 1, seed, out, prompt, max_new_tokens, temperature,
                            top_k)
    from genzoo.imaging import save_grid

    if interpolate:
        steps = n or 10
        other = next_seed(seed)
        out = out or Path(run) / f"interpolate-{seed}-{other}.png"
        save_grid(out, generator.interpolate(seed, other, steps), ncol=steps)
    else:
        out = out or Path(run) / f"sample-seed{seed}.png"
        save_grid(out, generator.sample(n or 64, seed=seed))
    click.echo(str(out))


def _check_output_file(out: Path, suffix: str | None, run: Path | None = None) -> None:
    """Refuse an output path that cannot be written, or that is one of ``run``'s own files
    (its weights, config, records, checkpoints), before any work is done."""
    from genzoo.checkpoint import RunDir
    from genzoo.runlock import LOCK_NAME

    if suffix is not None and out.suffix.lower() != suffix:
        raise GenzooError(f"--out {out}: images are written as PNG; name the file *{suffix}")
    if suffix is None and out.suffix.lower() in IMAGE_SUFFIXES:
        raise GenzooError(f"--out {out}: a text model's samples are text; name a text file "
                          "(e.g. *.txt)")
    if out.is_dir():
        raise GenzooError(f"--out {out} is a folder; name a file in it")
    parent = out.parent
    if parent.exists() and not parent.is_dir():
        raise GenzooError(f"--out {out}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise GenzooError(f"--out {out}: the folder {parent} does not exist")
    if run is not None and Path(run).is_dir():
        # Both with links resolved and as written: RUN/checkpoints may be a link elsewhere.
        for target, home in ((out.resolve(), Path(run).resolve()),
                             (Path(os.path.abspath(out)), Path(os.path.abspath(run)))):
            owned = {home / name for name in (*RunDir.RUN_FILES, LOCK_NAME)}
            if target in owned or (home / "checkpoints") in target.parents:
                raise GenzooError(f"--out {out} is one of the run's own files; name another "
                                  "file")


def _sample_text(generator: Any, n: int, seed: int, out: Path | None, prompt: str | None,
                 max_new_tokens: int, temperature: float, top_k: int) -> None:
    """Stream each sample to stdout as it is generated; --out also saves them."""
    start = prompt if prompt is not None else "\n"
    generator.tokenizer.encode(start)  # characters outside the vocabulary: one clear line
    texts = []
    for i in range(n):
        if i:
            click.echo("\n" + "-" * 40)
        click.echo(start, nl=False)
        pieces = []
        for ch in generator.stream(start, max_new_tokens=max_new_tokens,
                                   temperature=temperature, top_k=top_k,
                                   seed=next_seed(seed, i)):
            click.echo(ch, nl=False)
            pieces.append(ch)
        texts.append(start + "".join(pieces))
    click.echo()
    if out is not None:
        from genzoo.checkpoint import atomic_write_bytes

        atomic_write_bytes(out, ("\n" + "-" * 40 + "\n").join(texts).encode("utf-8"))


@cli.command("eval")
@click.argument("run", type=PathParam(path_type=Path))
@click.option("--data", default=None, help="Evaluate on this dataset [the run's].")
@click.option("--k", type=click.IntRange(1, 5000), default=1000, show_default=True,
              help="VAE: importance samples for the log-likelihood.")
@click.option("--samples", type=click.IntRange(100, 100_000), default=10_000, show_default=True,
              help="Image models: generated images for the sample-quality metrics.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def eval_(run: Path, data: str | None, k: int, samples: int, as_json: bool) -> None:
    """Evaluate a trained RUN on its test split; writes RUN/eval.json.

    With --data naming another dataset (of the same image shape, or text the run's
    vocabulary covers), the figures go to RUN/eval-<dataset>.json instead.

    Examples:

    \b
        genzoo eval runs/vae-torch-20261128-131650
        genzoo eval runs/gan-torch-20261128-140000 --json
    """
    from genzoo.runs import saved_spec
    from genzoo.checkpoint import RunDir

    _, spec = saved_spec(RunDir(run))  # a clear error before the framework loads
    if not spec.evaluator and _given("k"):
        raise GenzooError(f"--k applies to models whose plugin has its own metrics (the VAE's "
                          f"likelihood); {spec.name} has none")
    if spec.kind != "image" and _given("samples"):
        raise GenzooError("--samples applies to image models")
    from genzoo.evaluation import eval_path, evaluate_run
    from genzoo.progress import make_reporter

    result = evaluate_run(run, data=data, k=k, samples=samples, reporter=make_reporter())
    if as_json:
        return _echo_json(result)
    rows = [[name, f"{value:.4f}"] for name, value in result["metrics"].items()]
    reference = result["protocol"].get("reference", {})
    rows += [[f"reference: {name}", f"{value:.4f}"] for name, value in reference.items()]
    _table(["metric", "value"], rows)
    click.echo(f"protocol and figures: {eval_path(run, data)} "
               f"({result['wall_time_s']:.1f} s)")


@cli.command("compare")
@click.argument("runs", nargs=-1, required=True, type=PathParam(path_type=Path))
@click.option("--metric", "metrics", multiple=True, metavar="TEXT",
              help="Show only the metrics whose name contains TEXT; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def compare_(runs: tuple[Path, ...], metrics: tuple[str, ...], as_json: bool) -> None:
    """Compare trained RUNs side by side: settings, time and recorded metrics.

    A folder that is not a run stands for every run directly inside it. Figures come
    from each run's meta.json and eval.json; nothing is recomputed.

    Examples:

    \b
        genzoo compare runs/vae-torch-20261128-131650 runs/vae-keras-20261128-131702
        genzoo compare runs/study        # every run in the folder, and mean ± sd
        genzoo compare runs/study --metric loss --metric bpc
    """
    from genzoo.comparison import compare, table

    result = compare(runs, metrics=metrics)
    if as_json:
        return _echo_json(result)
    _table(*table(result))


@cli.group("plugin")
def plugin_group() -> None:
    """Write a new model plugin (`genzoo plugins` lists the installed ones)."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--backend", type=click.Choice(BACKEND_CHOICES), default="torch",
              show_default=True,
              help="The framework of the template's network.")
@click.option("--dir", "directory", type=PathParam(path_type=Path), default=Path("."),
              show_default=True,
              help="Where to create the genzoo-NAME folder (made if missing).")
def plugin_new(name: str, backend: str, directory: Path) -> None:
    """Write a ready-to-install plugin package for a new model NAME.

    Then:

    \b
        cd genzoo-NAME && pip install -e . && genzoo train NAME && python -m pytest
    """
    from genzoo.registry import get_registry
    from genzoo.templates.plugin import write_plugin

    taken = get_registry().models.get((name, backend))
    if taken is not None:
        raise GenzooError(f"model '{name}' ({backend}) is already registered by plugin "
                          f"'{taken.plugin}'; choose another name")
    root = write_plugin(name, backend, directory)
    click.echo(f"wrote {root}")
    click.echo(f"next: pip install -e {root} && genzoo train {name} && "
               f"python -m pytest {root}")


def _show_warning(message: Any, category: type, filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    print(f"genzoo: warning: {one_line(str(message))}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors print one line and exit 2, Ctrl-C exits 130."""
    warnings.showwarning = _show_warning
    try:
        code = cli.main(args=argv, prog_name="genzoo", standalone_mode=False)
    except GenzooError as exc:
        stopped = exc.exit_code in (130, 143)  # Ctrl-C or SIGTERM, handled: not an error
        print(f"genzoo: {'' if stopped else 'error: '}{one_line(str(exc))}", file=sys.stderr)
        _exit(exc.exit_code)
    except click.exceptions.Abort:
        print("genzoo: aborted", file=sys.stderr)
        _exit(130)
    except KeyboardInterrupt as exc:
        print("genzoo: interrupted", file=sys.stderr)
        _exit(143 if isinstance(exc, Terminated) else 130)
    except NO_ARGS_IS_HELP as exc:  # `genzoo`, `genzoo plugin`
        click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
        _exit(0)
    except click.ClickException as exc:
        print(f"genzoo: error: {one_line(exc.format_message())}", file=sys.stderr)
        _exit(exc.exit_code)
    except OSError as exc:  # a path the system refuses: a name too long, a full disk, ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"genzoo: error: {one_line(exc.strerror or str(exc))}{where}", file=sys.stderr)
        _exit(2)
    except Exception as exc:
        if not _out_of_memory(exc):
            raise
        print("genzoo: error: out of memory (a smaller model, batch size or --n needs less): "
              f"{one_line(str(exc))[:200]}", file=sys.stderr)
        _exit(2)
    _exit(code if isinstance(code, int) else 0)


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says an allocation failed: Python's MemoryError, torch's RuntimeError
    ("can't allocate memory", CUDA's "out of memory"), TensorFlow's ResourceExhaustedError."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text
                                              or "out of memory" in text.lower())


def _exit(code: int) -> None:
    """Exit; a rank started by torchrun leaves without tearing down C++ state.

    Everything the run writes is written and renamed into place before this point. What
    remains at interpreter exit is the destruction of gloo's and c10d's threads, which
    can abort a finished rank ("terminate called without an active exception") and so
    fail a job that succeeded.
    """
    if os.environ.get("TORCHELASTIC_RUN_ID") and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
