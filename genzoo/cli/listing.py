"""``genzoo list``, ``datasets`` and ``plugins``: what is installed (no framework is
imported)."""

from __future__ import annotations

import click

from genzoo.cli.group import PluginGroup, cli, echo_json, load_registry, table


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_models(as_json: bool) -> None:
    """List the registered models, their backends and presets."""
    registry = load_registry()
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
        return echo_json(rows)
    table(["model", "backends", "kind", "presets (* default)", "default data", "plugin"], [
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
    for spec in sorted(load_registry().datasets.values(), key=lambda s: (s.kind, s.name)):
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
        return echo_json(rows)
    table(["dataset", "kind", "shape / vocab", "status", "source", "licence"], [
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
    infos = load_registry().plugins
    group = ctx.find_root().command
    if isinstance(group, PluginGroup):
        group.load_plugin_commands()  # their commands, and any error adding them
    if as_json:
        return echo_json([{
            "name": i.name, "module": i.module, "distribution": i.distribution,
            "version": i.version, "hooks": i.hooks, "models": i.models,
            "datasets": i.datasets, "commands": i.commands, "error": i.error,
            **({"traceback": i.traceback} if verbose else {}),
        } for i in infos])
    table(["plugin", "distribution", "version", "hooks", "registered", "error"], [
        [i.name, i.distribution, i.version, ", ".join(i.hooks),
         ", ".join(i.models + i.datasets + [f"genzoo {c}" for c in i.commands]),
         i.error or ""] for i in infos])
    if verbose:
        for i in infos:
            if i.traceback:
                click.echo(f"\n--- {i.name} ---\n{i.traceback}", err=True)
