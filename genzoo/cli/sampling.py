"""``genzoo sample``: image grids, interpolations, and text streamed to the terminal."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from genzoo.cli.group import PathParam, cli, given
from genzoo.config import MAX_NEW_TOKENS, MAX_SEED, next_seed
from genzoo.errors import GenzooError
from genzoo.sampling import TEMPERATURE, TOP_K

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
SAME_SETTING = {"temperature": "temperature", "top_k": "top_k",  # flag -> --set field
                "max_new_tokens": "sample_chars"}
F = TypeVar("F", bound=Callable[..., Any])


def settings_options(command: F) -> F:
    """``--set KEY=VALUE`` (the run's sampling settings) and ``--weights``, as
    ``genzoo sample`` and ``genzoo eval`` take them."""
    command = click.option(
        "--weights", type=click.Choice(["auto", "ema", "raw"]), default="auto",
        show_default=True, help="auto: the moving average of the weights when the run kept "
        "one (ema_decay), else the trained weights; ema: the average; raw: the trained ones.",
    )(command)
    return click.option(
        "--set", "assignments", multiple=True, metavar="KEY=VALUE",
        help="Change a sampling setting of the run (the Transformer's temperature, top_k, "
             "sample_chars; the VAE's and the GAN's temperature); repeatable. Other fields "
             "are fixed when "
             "the model is trained.",
    )(command)


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
                   "(N images) instead of a grid; with --label A,B, from class A to class "
                   "B at the latent of SEED.")
@click.option("--label", "label", default=None, metavar="CLASS|all|A,B",
              help="Conditional models: draw class CLASS (a number from 0); 'all': a grid "
                   "with one labelled row of N images per class [N: 8]; A,B with "
                   "--interpolate: from class A to class B.")
@click.option("--prompt", default=None, help="Text: the text to continue [a newline].")
@click.option("--max-new-tokens", type=click.IntRange(1, MAX_NEW_TOKENS), default=500,
              show_default=True,
              help=f"Text: characters to generate, at most {MAX_NEW_TOKENS:,} (or --set "
                   "sample_chars=N).")
@click.option("--temperature", type=click.FloatRange(min=0.0), default=None,
              help="Text: softmax temperature; 0 picks the likeliest character [the run's "
                   f"temperature setting, {TEMPERATURE} by default].")
@click.option("--top-k", type=click.IntRange(min=0), default=None,
              help="Text: sample among the K likeliest characters; 0 among all [the run's "
                   f"top_k setting, {TOP_K} by default].")
@settings_options
def sample(run: Path, n: int | None, seed: int, out: Path | None, device: str,
           interpolate: bool, label: str | None, prompt: str | None, max_new_tokens: int,
           temperature: float | None, top_k: int | None, assignments: tuple[str, ...],
           weights: str) -> None:
    """Draw samples from a trained RUN: an image grid, or text streamed to the terminal.

    Examples:

    \b
        genzoo sample runs/vae-torch-20261128-131650 --n 64 --seed 1 --out grid.png
        genzoo sample runs/gan-torch-20261128-140000 --interpolate --n 10
        genzoo sample runs/cgan-torch-20261128-140000 --label 7 --n 16
        genzoo sample runs/cgan-torch-20261128-140000 --label all
        genzoo sample runs/cgan-torch-20261128-140000 --interpolate --label 3,8
        genzoo sample runs/transformer-torch-20261128-150000 --prompt "ROMEO:" \\
            --max-new-tokens 500 --temperature 0.8 --top-k 40
        genzoo sample runs/transformer-torch-20261128-150000 --set temperature=0 \\
            --weights raw
    """
    from genzoo.rundir import RunDir
    from genzoo.settings import parse_settings, text_defaults

    saved = RunDir(run).read_config()  # errors before the framework loads
    kind = saved["data_info"]["kind"]
    if kind == "text" and interpolate:
        raise GenzooError("--interpolate applies to image models")
    labels = _parse_label(label, saved, run, interpolate) if label is not None else None
    for name in ("prompt", "max_new_tokens", "temperature", "top_k"):
        if kind != "text" and given(name):
            raise GenzooError(f"--{name.replace('_', '-')} applies to text models")
    settings = parse_settings(assignments)
    for name, key in SAME_SETTING.items():
        if given(name) and key in settings:
            raise GenzooError(f"--{name.replace('_', '-')} and --set {key}=... are the same "
                              "setting; give one of them")
    if temperature is not None and not math.isfinite(temperature):
        raise GenzooError(f"--temperature must be a finite number of at least 0, not {temperature}")
    if interpolate and n == 1:
        raise GenzooError("--interpolate needs --n of at least 2 (the two ends)")
    if out is not None:
        _check_output_file(out, ".png" if kind != "text" else None, run)
    import genzoo

    generator: Any = genzoo.load(run, device=device, settings=settings,
                                 weights=weights)  # image generators can interpolate
    if kind == "text":
        chosen = text_defaults(generator.config)  # the run's, or as --set changed them
        if temperature is not None:
            chosen["temperature"] = temperature
        if top_k is not None:
            chosen["top_k"] = top_k or None
        if "sample_chars" in settings:
            max_new_tokens = generator.config.sample_chars
        return _sample_text(generator, n or 1, seed, out, prompt, max_new_tokens,
                            chosen["temperature"], chosen["top_k"])
    from genzoo.imaging import save_grid

    if interpolate:
        steps = n or 10
        if isinstance(labels, tuple):  # from one class to another, at one latent
            out = out or Path(run) / f"interpolate-{seed}-label{labels[0]}-{labels[1]}.png"
            strip = generator.interpolate(seed, seed, steps, labels=labels)
        else:
            other = next_seed(seed)
            tag = "" if labels is None else f"-label{labels}"
            out = out or Path(run) / f"interpolate-{seed}-{other}{tag}.png"
            strip = generator.interpolate(seed, other, steps, labels=labels)
        save_grid(out, strip, ncol=steps)
    elif labels == "all":
        from genzoo.conditioning import class_rows
        from genzoo.imaging import save_class_grid

        per, k = n or 8, generator.num_classes
        out = out or Path(run) / f"sample-seed{seed}-classes.png"
        images = generator.sample(per * k, seed=seed, labels=class_rows(k, per))
        save_class_grid(out, images, list(generator.info.classes), per)
    else:
        tag = "" if labels is None else f"-label{labels}"
        out = out or Path(run) / f"sample-seed{seed}{tag}.png"
        save_grid(out, generator.sample(n or 64, seed=seed, labels=labels))
    click.echo(str(out))


def _parse_label(text: str, saved: dict[str, Any], run: Path,
                 interpolate: bool) -> int | tuple[int, int] | str:
    """``--label``: a class number, ``all``, or ``A,B`` with ``--interpolate``, checked
    against the run's classes before the framework loads."""
    from genzoo.conditioning import is_conditional

    classes = saved["data_info"].get("classes", [])
    if saved["data_info"]["kind"] != "image" or not is_conditional(saved["model_config"]):
        raise GenzooError(f"--label: {run} is an unconditional model; it takes no labels "
                          "(train it with --set conditional=true to draw chosen classes)")
    text = text.strip()
    if text.lower() == "all":
        if interpolate:
            raise GenzooError("--label all makes a grid; --interpolate takes one label or two "
                              "(A,B)")
        return "all"
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 2 or (len(parts) == 2 and not interpolate):
        raise GenzooError(f"--label {text}: give one class{', or two (A,B)' if interpolate else ''}"
                          f"{'' if interpolate else ' (two, A,B, with --interpolate)'}")
    found = []
    for part in parts:
        if not part.isdigit():
            raise GenzooError(f"--label {text}: '{part}' is not a class number (0 to "
                              f"{len(classes) - 1}) or 'all'")
        if int(part) >= len(classes):
            raise GenzooError(f"--label {part} is out of range: this model has {len(classes)} "
                              f"classes, 0 to {len(classes) - 1}")
        found.append(int(part))
    return (found[0], found[1]) if len(found) == 2 else found[0]


def _check_output_file(out: Path, suffix: str | None, run: Path | None = None) -> None:
    """Refuse an output path that cannot be written, or that is one of ``run``'s own files
    (its weights, config, records, checkpoints), before any work is done."""
    from genzoo.rundir import RunDir
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
                 max_new_tokens: int, temperature: float, top_k: int | None) -> None:
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
