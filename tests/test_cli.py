"""The command line, run as users run it: the real console script in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_genzoo

FRAMEWORKS = ("torch", "tensorflow", "keras")


@pytest.mark.parametrize("args", [["--help"], ["list"], ["datasets"], ["plugins"],
                                  ["train", "--help"]])
def test_fast_commands_import_no_framework(args: list[str]) -> None:
    _run_importing_no_framework(*args)


def _run_importing_no_framework(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``genzoo ARGS`` under ``-X importtime``; assert it succeeds without importing
    torch, TensorFlow or Keras."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "genzoo", *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert imported, "no -X importtime output"
    assert not [m for m in imported if m.split(".")[0] in FRAMEWORKS]
    return result


def test_list_json_describes_every_model() -> None:
    result = run_genzoo("list", "--json")
    assert result.returncode == 0
    vae = next(m for m in json.loads(result.stdout) if m["name"] == "vae")
    assert vae["backends"] == ["torch", "keras"]
    assert vae["default_preset"] == "mlp" and "tiny" in vae["presets"]
    assert vae["default_dataset"] == "digits" and vae["plugin"] == "vae"


def test_datasets_lists_bundled_and_downloadable() -> None:
    rows = {r["name"]: r for r in json.loads(run_genzoo("datasets", "--json").stdout)}
    assert rows["digits"]["status"] == "bundled" and rows["digits"]["shape"] == [8, 8, 1]
    assert rows["mnist"]["status"] == "local"  # GENZOO_DATA_DIR points at ../shared/data
    assert rows["tiny-shakespeare"]["vocab_size"] == 65 and rows["python-docs"]["vocab_size"] > 90


@pytest.mark.parametrize(("args", "message"), [
    (["train", "vea"], "unknown model 'vea'. Did you mean 'vae'?"),
    (["train", "vae", "--backend", "kears"], "no backend 'kears'. Did you mean 'keras'?"),
    (["train", "vae", "--preset", "cnv"], "unknown preset 'cnv' for vae. Did you mean 'conv'?"),
    (["train", "vae", "--data", "mnst"], "unknown dataset 'mnst'"),
    (["train", "vae", "--set", "latnt_dim=4"], "Did you mean 'latent_dim'?"),
    (["train", "vae", "--set", "latent_dim=four"], "expected an integer, got 'four'"),
    (["train", "vae", "--set", "latent_dim"], "--set expects KEY=VALUE"),
    (["train", "vae", "--set", "backend=keras"], "backend is not a config field; use --backend"),
    (["train", "vae", "--preset", ""], "preset is empty; leave it out for the default"),
    (["train", "vae", "--data", " "], "data is empty; leave it out for the default"),
    (["train", "vae", "--preset", "tiny", "--set", "latent_dim=999999999"], "out of memory"),  # under the bound
    (["sample", "r" * 300], "File name too long"),
    (["sample", "no-such-run", "--n", "10001"], "--n"),
    (["train", "vae", "--lr", "-0.1"], "'lr': must be positive"),
    (["train", "vae", "--batch-size", "0"], "'batch_size': must be positive"),
    (["train", "vae", "--epochs", "many"], "'many' is not a valid integer"),
    (["train", "vae", "--epochs", "2", "--steps", "3"], "give epochs or steps, not both"),
    (["sample", "no-such-run"], "no-such-run does not exist"),
    (["sample", "."], ". is not a genzoo run (no config.json)"),
    (["sample", "no-such-run", "--n", "0"], "--n"),
    (["compare", "no-such-run"], "no-such-run does not exist"),
    (["bogus"], "No such command 'bogus'"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = run_genzoo(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("genzoo: error: ")


def test_text_options_on_an_image_run_are_refused(tmp_path) -> None:
    run = tmp_path / "run"
    assert run_genzoo("train", "vae", "--preset", "tiny", "--steps", "2", "--out",
                      str(run)).returncode == 0
    for option, value in (("--prompt", "x"), ("--temperature", "0.8"), ("--top-k", "5"),
                          ("--max-new-tokens", "9")):
        result = run_genzoo("sample", str(run), option, value)
        assert result.returncode == 2 and f"{option} applies to text models" in result.stderr
    assert not list(run.glob("sample-seed*.png"))


@pytest.mark.parametrize("keras_backend", ["bogus", "jax"])
def test_an_unsupported_keras_backend_is_one_line(keras_backend, tmp_path) -> None:
    result = run_genzoo("train", "vae", "--backend", "keras", "--preset", "tiny", "--steps", "1",
                        "--out", str(tmp_path / "r"), env={"KERAS_BACKEND": keras_backend})
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"Keras's backend is '{keras_backend}'" in result.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("backend", ["torch", "keras"])
def test_train_then_sample_is_reproducible(backend: str, tmp_path) -> None:
    run = tmp_path / "run"
    trained = run_genzoo("train", "vae", "--backend", backend, "--preset", "tiny",
                         "--out", str(run))
    assert trained.returncode == 0, trained.stderr
    # Not a terminal: plain periodic log lines instead of a progress bar.
    assert "step 10/30" in trained.stderr and "\r" not in trained.stderr
    assert f"run: {run}" in trained.stdout
    for name in ("config.json", "meta.json", "model.safetensors", "metrics.jsonl",
                 "samples.png"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["backend"] == backend and meta["step"] == 30
    assert meta["device"] in ("cpu", "gpu") or meta["device"].startswith("cuda")  # not "auto"
    events = [json.loads(line)["event"] for line in (run / "metrics.jsonl").open()]
    assert {"train", "eval", "test"} <= set(events)

    grids = []
    for name, seed in (("a.png", "7"), ("b.png", "7"), ("c.png", "8")):
        result = run_genzoo("sample", str(run), "--n", "16", "--seed", seed,
                            "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        grids.append((tmp_path / name).read_bytes())
    assert grids[0] == grids[1] and grids[0] != grids[2]


def test_an_existing_run_is_not_overwritten(tmp_path) -> None:
    first = run_genzoo("train", "vae", "--preset", "tiny", "--steps", "5", "--out",
                       str(tmp_path))
    assert first.returncode == 0, first.stderr
    again = run_genzoo("train", "vae", "--preset", "tiny", "--out", str(tmp_path))
    assert again.returncode == 2 and "already holds a run" in again.stderr

    def files() -> dict[str, bytes]:  # the run's files (not its lock, which records a pid)
        return {p.name: p.read_bytes() for p in tmp_path.iterdir()
                if p.is_file() and not p.name.startswith(".")}

    before = files()
    (tmp_path.parent / "empty").mkdir()
    for bad in (["--data", str(tmp_path.parent / "empty")], ["--set", "latent_dim=0"]):
        failed = run_genzoo("train", "vae", "--preset", "tiny", "--steps", "5", "--out",
                            str(tmp_path), "--overwrite", *bad)
        assert failed.returncode == 2, failed.stderr
        # A run that cannot start replaces nothing.
        assert files() == before
    forced = run_genzoo("train", "vae", "--preset", "tiny", "--steps", "5", "--out",
                        str(tmp_path), "--overwrite")
    assert forced.returncode == 0, forced.stderr


def test_compare_puts_runs_side_by_side(tmp_path) -> None:
    import genzoo

    study = tmp_path / "study"
    for name, seed, lr in (("a-10", 10, 1e-3), ("a-2", 2, 1e-3), ("b-1", 1, 3e-3)):
        genzoo.train("vae", "torch", "tiny", steps=5, seed=seed, lr=lr, out=study / name)
    (study / "notes").mkdir()  # not a run: skipped inside a folder

    # Reads JSON only: no framework is imported, as for the other listing commands.
    found = json.loads(_run_importing_no_framework("compare", str(study), "--json").stdout)
    assert [Path(r["run"]).name for r in found["runs"]] == ["a-2", "a-10", "b-1"]  # natural order
    assert [r["differs"] for r in found["runs"]] == [{"lr": 1e-3}, {"lr": 1e-3}, {"lr": 3e-3}]
    metas = [json.loads((study / n / "meta.json").read_text()) for n in ("a-2", "a-10")]
    losses = [m["metrics"]["test"]["loss"] for m in metas]
    group = next(g for g in found["groups"] if g["differs"] == {"lr": 1e-3})
    assert group["runs"] == 2
    assert group["metrics"]["test loss"]["mean"] == pytest.approx(sum(losses) / 2)
    assert group["metrics"]["test loss"]["sd"] == pytest.approx(abs(losses[0] - losses[1]) / 2 ** 0.5)

    shown = run_genzoo("compare", str(study / "a-2"), str(study / "b-1"))
    assert shown.returncode == 0, shown.stderr
    assert "a-2" in shown.stdout and "lr=0.003" in shown.stdout and "test loss" in shown.stdout
    assert "mean ± sd" not in shown.stdout  # no group holds two runs

    losses_only = run_genzoo("compare", str(study), "--metric", "loss")
    assert "test loss" in losses_only.stdout and "test kl" not in losses_only.stdout
    unknown = run_genzoo("compare", str(study), "--metric", "fid")
    assert unknown.returncode == 2 and "no metric name contains 'fid'" in unknown.stderr

    missing = run_genzoo("compare", str(study / "notes"))
    assert missing.returncode == 2
    assert "is not a genzoo run and holds none" in missing.stderr


def test_compare_shows_settings_against_the_models_runs_in_any_backend(tmp_path) -> None:
    import shutil

    import genzoo

    for name, latent in (("eight", 8), ("four", 4)):
        genzoo.train("vae", "torch", "tiny", steps=2, latent_dim=latent, out=tmp_path / name)
    keras = shutil.copytree(tmp_path / "eight", tmp_path / "eight-keras")  # as if Keras's
    config = json.loads((keras / "config.json").read_text())
    (keras / "config.json").write_text(json.dumps({**config, "backend": "keras"}))
    runs = {Path(r["run"]).name: r for r in genzoo.compare(tmp_path)["runs"]}
    assert runs["eight-keras"]["backend"] == "keras"
    assert {n: r["differs"] for n, r in runs.items()} == {
        "eight": {"latent_dim": 8}, "eight-keras": {"latent_dim": 8}, "four": {"latent_dim": 4}}


def test_compare_groups_only_seed_repeats_of_finished_runs(tmp_path) -> None:
    import genzoo
    from genzoo.comparison import compare
    from genzoo.errors import CheckpointError

    for name, model, changes in (("v8", "vae", {"latent_dim": 8}), ("v4", "vae", {"latent_dim": 4}),
                                 ("g", "gan", {}), ("v8-again", "vae", {"latent_dim": 8, "seed": 1}),
                                 ("v8-nan", "vae", {"latent_dim": 8, "seed": 2})):
        genzoo.train(model, "torch", "tiny", steps=3, out=tmp_path / name, **changes)
    meta = tmp_path / "v8-nan" / "meta.json"  # a diverged test loss
    meta.write_text(meta.read_text().replace('"loss":', '"loss": NaN, "was":', 1))

    found = compare([tmp_path / "v8", tmp_path, tmp_path / "v8"])  # v8 named three times
    runs = {Path(r["run"]).name: r for r in found["runs"]}
    assert sorted(runs) == ["g", "v4", "v8", "v8-again", "v8-nan"]
    # Settings differ per model: the GAN has no latent_dim, the VAEs still differ in it.
    assert runs["v4"]["differs"] == {"latent_dim": 4} and runs["g"]["differs"] == {}
    eights = next(g for g in found["groups"] if g["differs"] == {"latent_dim": 8})
    assert eights["runs"] == 3
    assert eights["metrics"]["test loss"]["n"] == 2  # the NaN is left out...
    assert runs["v8-nan"]["metrics"]["test loss"] is None  # ...and is strict JSON's null
    json.loads(json.dumps(found, allow_nan=False))

    (tmp_path / "v4" / "meta.json").write_text(
        (tmp_path / "v4" / "meta.json").read_text().replace('"complete"', '"interrupted"'))
    again = compare([tmp_path])
    assert not [g for g in again["groups"] if g["differs"] == {"latent_dim": 4}]
    # Two runs of the same seed are repeats, not a spread: no mean ± sd for them.
    import shutil

    shutil.copytree(tmp_path / "g", tmp_path / "g-copy")
    twice = compare([tmp_path / "g", tmp_path / "g-copy"])
    assert len(twice["runs"]) == 2 and twice["groups"] == []
    # A hand-edited meta.json with values of the wrong type still lists, as far as it can.
    (tmp_path / "g-copy" / "meta.json").write_text(json.dumps(
        {"step": "x", "wall_time_s": "fast", "metrics": {"best": 3, "test": [1]}}))
    table = run_genzoo("compare", str(tmp_path / "g-copy"))
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr

    # A damaged run inside a folder is left out with a warning; named itself, it is an error.
    (tmp_path / "v4" / "config.json").write_text('{"model": "vae"')
    with pytest.warns(UserWarning, match=r"v4.*config.json is not valid JSON.*; left out"):
        rest = compare([tmp_path])
    assert sorted(Path(r["run"]).name for r in rest["runs"]) == [
        "g", "g-copy", "v8", "v8-again", "v8-nan"]
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        compare([tmp_path / "v4", tmp_path / "v8"])
    assert compare([]) == {"runs": [], "groups": []}  # nothing named, nothing to read
