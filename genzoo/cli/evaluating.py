"""``genzoo eval`` and ``genzoo compare``: figures measured, and runs side by side."""

from __future__ import annotations

from pathlib import Path

import click

from genzoo.cli.group import PathParam, cli, echo_json, given, table
from genzoo.cli.sampling import settings_options
from genzoo.errors import GenzooError


@cli.command("eval")
@click.argument("run", type=PathParam(path_type=Path))
@click.option("--data", default=None, help="Evaluate on this dataset [the run's].")
@click.option("--k", type=click.IntRange(1, 5000), default=1000, show_default=True,
              help="VAE: importance samples for the log-likelihood.")
@click.option("--samples", type=click.IntRange(100, 100_000), default=10_000, show_default=True,
              help="Image models: generated images for the sample-quality metrics.")
@settings_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def eval_(run: Path, data: str | None, k: int, samples: int, assignments: tuple[str, ...],
          weights: str, as_json: bool) -> None:
    """Evaluate a trained RUN on its test split; writes RUN/eval.json.

    With --data naming another dataset (of the same image shape, or text the run's
    vocabulary covers), the figures go to RUN/eval-<dataset>.json instead. The file
    records the sampling settings and the weights (ema or raw) the model was scored with.

    Examples:

    \b
        genzoo eval runs/vae-torch-20261128-131650
        genzoo eval runs/gan-torch-20261128-140000 --json --weights raw
    """
    from genzoo.config import from_dict
    from genzoo.runs import saved_spec
    from genzoo.rundir import RunDir
    from genzoo.settings import parse_settings, with_settings

    saved, spec = saved_spec(RunDir(run))  # a clear error before the framework loads
    settings = parse_settings(assignments)
    with_settings(from_dict(spec.config, saved["model_config"]), settings)
    if not spec.evaluator and given("k"):
        raise GenzooError(f"--k applies to models whose plugin has its own metrics (the VAE's "
                          f"likelihood); {spec.name} has none")
    if spec.kind != "image" and given("samples"):
        raise GenzooError("--samples applies to image models")
    from genzoo.evaluation import eval_path, evaluate_run
    from genzoo.progress import make_reporter

    result = evaluate_run(run, data=data, k=k, samples=samples, reporter=make_reporter(),
                          settings=settings, weights=weights)
    if as_json:
        return echo_json(result)
    rows = [[name, f"{value:.4f}"] for name, value in result["metrics"].items()]
    reference = result["protocol"].get("reference", {})
    rows += [[f"reference: {name}", f"{value:.4f}"] for name, value in reference.items()]
    table(["metric", "value"], rows)
    shown = ", ".join(f"{name}={value}" for name, value in result["settings"].items())
    click.echo(f"weights: {result['weights']}" + (f"; settings: {shown}" if shown else ""))
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
    from genzoo.comparison import compare, table as comparison_table

    result = compare(runs, metrics=metrics)
    if as_json:
        return echo_json(result)
    table(*comparison_table(result))
