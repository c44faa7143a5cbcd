"""Adversarial probes of the command line: bad input, foreign folders, symbolic links,
damaged run state, killed runs and absurd counts.

Every case runs the real console script in a subprocess, in a fresh workspace folder that
holds everything the case touches (the current directory of the command included), and
asserts:

- the exit status (2 for a refusal, 0 for a recovery; a few cases accept either, said
  in the case);
- no "Traceback" on stderr; a refusal prints exactly one line, starting
  "genzoo: error: "; a recovery prints no error line, and "genzoo: warning: " lines only
  where the case allows them;
- the workspace before and after, walked without following symbolic links (the sha256
  of every file, every folder, every link's target): nothing changed outside what
  genzoo may write. A refusal may touch only a run's ``.lock``; a recovery only the
  files genzoo owns in the run it works on (``OWNED``); anything else (another tool's
  files, the targets of links, foreign folders) must be byte for byte as it was.

The trained runs the probes need are built once per module and copied per case; the
selected cases run once, as many at a time as there are CPUs (at least two;
``GENZOO_PROBE_WORKERS`` sets it), in a module fixture, and each test asserts on its
case's outcome. ``GENZOO_PROBES_LOG=FILE`` writes every case's exit status, time and
stderr to FILE (JSON lines).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

GENZOO = str(Path(sys.executable).with_name("genzoo"))
FAST = 20  # s: a refusal made up front takes about a second; more means it went on
SLOW = 180  # s: a command that trains, samples or evaluates a tiny run

# What genzoo writes in a run folder, relative to it (full matches). Anything else there
# belongs to someone else and must survive every command unchanged.
OWNED = re.compile(r"""(
    config\.json | meta\.json | model\.safetensors | best\.safetensors | metrics\.jsonl
  | samples\.png | samples\.txt | eval\.json | eval-[^/]+\.json | sample-seed\d+\.png
  | interpolate-\d+-\d+\.png | \.lock | \.[^/]+\.tmp-\d+ | \.write-test-\d+
  | checkpoints
  | checkpoints/( latest | \.latest\.tmp-\d+ | \.[^/]+\.tmp-\d+
                | (step-\d{8} | \.tmp-step-\d{8}-\d+ | \.old-step-\d{8}-\d+
                   | corrupt-step-\d{8})(/[^/]+)? )
)""", re.VERBOSE)


# --- the snapshot of a folder ------------------------------------------------------------

def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (``""`` is root itself), never following a link:
    ``("dir",)``, ``("file", size, sha256)``, ``("link", target)`` or
    ``("special", kind)`` (a FIFO is never opened)."""
    entries: dict[str, tuple] = {}

    def visit(path: str, rel: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            entries[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            entries[rel] = ("dir",)
            for name in sorted(os.listdir(path)):
                visit(os.path.join(path, name), f"{rel}/{name}" if rel else name)
        elif stat.S_ISREG(st.st_mode):
            entries[rel] = ("file", st.st_size, _sha256(path))
        else:
            entries[rel] = ("special", stat.S_IFMT(st.st_mode))

    visit(str(root), "")
    return entries


def changes(before: dict[str, tuple], after: dict[str, tuple]) -> dict[str, tuple]:
    """The paths added, removed or changed: ``{path: (before, after)}`` (None: absent)."""
    return {p: (before.get(p), after.get(p)) for p in sorted(before.keys() | after.keys())
            if before.get(p) != after.get(p)}


def _allowed(path: str, writes: tuple[tuple[str, str], ...]) -> bool:
    """Whether genzoo may have changed ``path`` (relative to the workspace): ``writes``
    names folders with a mode: "run" (the files genzoo owns there), "lock" (its .lock
    only), "any" (a folder genzoo creates: everything in it)."""
    for folder, mode in writes:
        if path == folder:
            if mode in ("run", "any"):
                return True
            continue
        if not path.startswith(folder + "/"):
            continue
        inside = path[len(folder) + 1:]
        if mode == "any" or (mode == "run" and OWNED.fullmatch(inside)) or \
                (mode == "lock" and inside == ".lock"):
            return True
    return False


# --- running genzoo ----------------------------------------------------------------------

def run_cli(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """The console script in a subprocess; one that does not end in time is killed and
    reported as hanging."""
    try:
        return subprocess.run([GENZOO, *args], capture_output=True, text=True, cwd=cwd,
                              timeout=timeout, stdin=subprocess.DEVNULL,
                              env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else \
            (exc.stderr or "")
        pytest.fail(f"genzoo {' '.join(args)} did not end within {timeout:.0f} s (it hangs "
                    f"or works instead of refusing); stderr so far: {err[-600:]!r}")


def check_stderr(result: subprocess.CompletedProcess[str], codes: tuple[int, ...],
                 warnings: bool) -> None:
    err = result.stderr
    shown = f"exit {result.returncode}, stderr: {err[-3000:]!r}"
    assert result.returncode in codes, shown
    assert "Traceback" not in err, shown
    if result.returncode != 0:
        lines = err.splitlines()
        assert len(lines) == 1 and err.endswith("\n"), f"not one line: {shown}"
        assert lines[0].startswith("genzoo: error: ") and lines[0][15:].strip(), shown
    else:
        assert "genzoo: error" not in err, shown
        if not warnings:
            assert "genzoo: warning" not in err, shown


# --- the runs the probes start from --------------------------------------------------------

def _train(out: Path, *args: str) -> None:
    result = run_cli(["train", *args, "--out", str(out)], cwd=out.parent, timeout=SLOW)
    assert result.returncode == 0, result.stderr[-3000:]


def build_vae(folder: Path) -> Path:
    """The tiny VAE, 30 steps, checkpoints at 10, 20 and 30."""
    out = folder / "run"
    _train(out, "vae", "--preset", "tiny", "--steps", "30", "--checkpoint-every", "10")
    return out


def build_text(folder: Path) -> Path:
    """The tiny Transformer, 2 steps on tiny Shakespeare."""
    out = folder / "run"
    _train(out, "transformer", "--preset", "tiny", "--steps", "2", "--checkpoint-every", "2")
    return out


def _has_record(run: Path) -> bool:
    try:
        return any(json.loads(line).get("event") == "train"
                   for line in (run / "metrics.jsonl").read_text().splitlines()
                   if line.endswith("}"))
    except (OSError, ValueError):
        return False


def build_killed(folder: Path) -> Path:
    """A run killed (SIGKILL) after it logged its first steps, before its first
    checkpoint: meta.json still says running, checkpoints/ holds none."""
    out = folder / "run"
    proc = subprocess.Popen([GENZOO, "train", "vae", "--preset", "tiny", "--steps", "100000",
                             "--checkpoint-every", "100000", "--set", "log_every=5",
                             "--out", str(out)], cwd=folder, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + SLOW
    try:
        while not _has_record(out):
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it was killed: {proc.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("the run logged nothing in time")
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stderr.close()
    assert not list(out.glob("checkpoints/step-*")) and not (out / "model.safetensors").exists()
    assert json.loads((out / "meta.json").read_text())["status"] == "running"
    return out


SOURCES = {"vae": build_vae, "text": build_text, "killed": build_killed}


# --- building a case's workspace -----------------------------------------------------------

def copy_run(ws: Path, source: Path, name: str = "run") -> Path:
    return Path(shutil.copytree(source, ws / name, symlinks=True))


def outside(ws: Path) -> Path:
    """A folder of someone else's files, outside every run (links point into it)."""
    folder = ws / "outside"
    folder.mkdir(exist_ok=True)
    return folder


def resumable(ws: Path, src: dict[str, Path]) -> Path:
    """A copy of the VAE run as if killed at step 25: checkpoints at 10 and 20, meta.json
    saying running, no final weights or samples."""
    run = copy_run(ws, src["vae"])
    shutil.rmtree(run / "checkpoints" / "step-00000030")
    (run / "checkpoints" / "latest").write_text("step-00000020\n")
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "status": "running", "step": 25}))
    (run / "model.safetensors").unlink()
    (run / "samples.png").unlink()
    return run


def link_out(ws: Path, run: Path, name: str, content: bytes | None = None) -> Path:
    """Make ``run/name`` a link to a file (or a copy of a folder) in outside/."""
    target = outside(ws) / name.replace("/", "_")
    here = run / name
    if here.is_dir() and not here.is_symlink():
        shutil.copytree(here, target)
        shutil.rmtree(here)
    else:
        if content is not None:
            target.write_bytes(content)
        elif here.exists():
            target.write_bytes(here.read_bytes())
        else:
            target.write_bytes(b"someone else's bytes\n")
        if os.path.lexists(here):
            here.unlink()
    here.symlink_to(target)
    return target


NESTED = "[" * 100_000
HUGE_JSON = '{"model": "vae", "pad": "' + "x" * (65 << 20) + '"}'  # over genzoo's 64 MiB


def idx_folder(folder: Path, raw: bool, size: int | None) -> None:
    """MNIST's four IDX files, cut to ``size`` bytes (gzip as shipped, or raw)."""
    import gzip

    folder.mkdir()
    source = Path(os.environ.get("GENZOO_DATA_DIR") or
                  Path(__file__).resolve().parents[2] / "shared" / "data") / "mnist"
    for gz in sorted(source.glob("*.gz")):
        if raw:
            with gzip.open(gz, "rb") as f:
                data = f.read(4096 if size is None else size)
            (folder / gz.name.removesuffix(".gz")).write_bytes(data[:size])
        else:
            with open(gz, "rb") as f:
                (folder / gz.name).write_bytes(f.read(size or 0))


# --- the cases -------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    args: list[str]  # "{ws}" is the workspace
    setup: Callable[[Path, dict[str, Path]], object] | None = None
    codes: tuple[int, ...] = (2,)
    says: tuple[str, ...] = ()  # stderr holds each
    says_any: tuple[str, ...] = ()  # stderr holds one of them (case-insensitive)
    not_says: tuple[str, ...] = ()
    writes: tuple[tuple[str, str], ...] = ()  # see _allowed
    warnings: bool = False  # "genzoo: warning:" lines allowed when it exits 0
    needs: tuple[str, ...] = ()
    timeout: float = FAST
    after: Callable[[Path, subprocess.CompletedProcess[str]], None] | None = None


def _with(*steps: Callable[[Path, dict[str, Path]], object]):
    def setup(ws: Path, src: dict[str, Path]) -> None:
        for step in steps:
            step(ws, src)
    return setup


def _vae(ws, src):
    return copy_run(ws, src["vae"])


def _text(ws, src):
    return copy_run(ws, src["text"])


def _blob(ws, src):
    (ws / "blob.bin").write_bytes(bytes(range(256)) * 64 + b"\x00\xff\xfe" * 1000)


def _fifo(ws, src):
    os.mkfifo(ws / "pipe")


def _empty(ws, src):
    (ws / "empty").mkdir()


def _corpus(ws, src):
    (ws / "corpus.txt").write_text("to be or not to be " * 200)


def _notes(ws, src):
    (ws / "notes").mkdir()
    (ws / "notes" / "notes.txt").write_text("my notes\n")


def _weights(content: bytes | None):
    def setup(ws, src):
        run = copy_run(ws, src["vae"])
        if content is None:
            (run / "model.safetensors").unlink()
        else:
            (run / "model.safetensors").write_bytes(content)
    return setup


def _foreign(files: dict[str, bytes]):
    def setup(ws, src):
        folder = ws / "foreign"
        folder.mkdir()
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
    return setup


def _run_file(name: str, text: str, status: str | None = None, base: str = "vae",
              folder: str = "run"):
    """A copy of a run with ``name`` replaced by ``text`` (and meta.json saying
    ``status``)."""
    def setup(ws, src):
        if folder != "run":
            (ws / folder).parent.mkdir(parents=True, exist_ok=True)
        run = copy_run(ws, src[base], folder)
        if status is not None:
            meta = json.loads((run / "meta.json").read_text())
            (run / "meta.json").write_text(json.dumps({**meta, "status": status}))
        (run / name).write_text(text)
    return setup


def _study(name: str, text: str):
    """study/ holding a good run and one whose ``name`` is ``text``."""
    def setup(ws, src):
        (ws / "study").mkdir()
        copy_run(ws, src["vae"], "study/good")
        bad = copy_run(ws, src["vae"], "study/bad")
        (bad / name).write_text(text)
    return setup


def _latest(content: bytes):
    def setup(ws, src):
        run = resumable(ws, src)
        (run / "checkpoints" / "latest").write_bytes(content)
    return setup


def _metrics(*lines: str):
    def setup(ws, src):
        run = resumable(ws, src)
        with open(run / "metrics.jsonl", "a") as f:
            f.write("".join(line + "\n" for line in lines))
    return setup


def _foreign_in_checkpoints(ws, src):
    run = resumable(ws, src)
    ckpts = run / "checkpoints"
    shutil.copytree(ckpts / "step-00000010", ckpts / "step-00000010-backup")
    (ckpts / "step-abc").mkdir()
    (ckpts / "step-abc" / "state.json").write_text('{"step": 5}')
    (ckpts / "step-00000040").write_bytes(b"a file, not a checkpoint\n")


def _file_named_step(ws, src):
    run = resumable(ws, src)
    shutil.rmtree(run / "checkpoints" / "step-00000020")
    (run / "checkpoints" / "step-00000020").write_bytes(b"a file, not a checkpoint\n")


def _nested_state(ws, src):
    run = resumable(ws, src)
    (run / "checkpoints" / "step-00000020" / "state.json").write_text(NESTED)


def _genzoo_run_with_foreign_files(ws, src):
    run = copy_run(ws, src["vae"])
    (run / "notes.txt").write_text("what I tried\n")
    (run / "checkpoints" / "other-tool").mkdir()
    (run / "checkpoints" / "other-tool" / "state.bin").write_bytes(b"\x01\x02")
    shutil.copytree(run / "checkpoints" / "step-00000010",
                    run / "checkpoints" / "step-00000010-backup")
    (run / "checkpoints" / "step-abc").mkdir()


def _checkpoints_link(base: Callable):
    def setup(ws, src):
        run = base(ws, src)
        link_out(ws, run, "checkpoints")
    return setup


def _overwrite_through_links(ws, src):
    run = copy_run(ws, src["vae"])
    for name in ("metrics.jsonl", "meta.json", "model.safetensors", "samples.png",
                 "best.safetensors", "checkpoints/latest", "checkpoints/step-00000010"):
        link_out(ws, run, name)


def _resume_links(*names: str):
    def setup(ws, src):
        run = resumable(ws, src)
        for name in names:
            link_out(ws, run, name)
    return setup


def _sample_link(name: str):
    def setup(ws, src):
        run = copy_run(ws, src["vae"])
        link_out(ws, run, name, b"\x89PNG someone else's picture\n")
    return setup


def _fifo_in_run(name: str, status: str | None = None):
    """A copy of the VAE run whose ``name`` is a named pipe nobody writes to."""
    def setup(ws, src):
        run = copy_run(ws, src["vae"])
        if status is not None:
            meta = json.loads((run / "meta.json").read_text())
            (run / "meta.json").write_text(json.dumps({**meta, "status": status}))
        (run / name).unlink()
        os.mkfifo(run / name)
    return setup


def _latest_special(kind: str):
    def setup(ws, src):
        run = resumable(ws, src)
        latest = run / "checkpoints" / "latest"
        latest.unlink()
        if kind == "fifo":
            os.mkfifo(latest)
        else:
            latest.mkdir()
            (latest / "step-00000020").write_text("someone's file\n")
    return setup


def _linked_out_folder(ws, src):
    foreign = outside(ws) / "foreign"
    foreign.mkdir()
    (foreign / "model.safetensors").write_bytes(b"another tool's weights")
    (ws / "link").symlink_to(foreign)


def _config_link_resume(ws, src):
    run = resumable(ws, src)
    link_out(ws, run, "config.json")


def _killed(ws, src):
    copy_run(ws, src["killed"])


def _killed_with_temporaries(ws, src):
    run = copy_run(ws, src["killed"])
    (run / ".model.safetensors.tmp-999999").write_bytes(b"half a file")
    (run / ".meta.json.tmp-999998").write_text('{"status": "runn')


def _status_is(status: str, step: int | None = None):
    def check(ws: Path, result) -> None:
        meta = json.loads((ws / "run" / "meta.json").read_text())
        assert meta["status"] == status, meta
        if step is not None:
            assert meta["step"] == step, meta
    return check


def _resumed_from_zero(ws: Path, result) -> None:
    _status_is("complete", 10)(ws, result)
    events = [json.loads(line) for line in (ws / "run" / "metrics.jsonl").open()]
    resumes = [e["step"] for e in events if e.get("event") == "resume"]
    assert resumes in ([], [0]), resumes


def _no_temporaries(ws: Path, result) -> None:
    _resumed_from_zero(ws, result)
    assert not list((ws / "run").glob(".*.tmp-*"))


def _from(step: int):
    """The resumed run went back to ``step`` and finished."""
    def check(ws: Path, result) -> None:
        _status_is("complete", 30)(ws, result)
        events = [json.loads(line) for line in (ws / "run" / "metrics.jsonl").open()]
        assert [e["step"] for e in events if e.get("event") == "resume"][-1:] == [step]
    return check


RUN = (("run", "lock"),)  # a refusal: the run as it was (its .lock may be taken)
WRITES_RUN = (("run", "run"),)
RESUME = ["train", "vae", "--resume", "{ws}/run"]
TRAIN = ["train", "vae", "--preset", "tiny"]
NEW = ["--out", "{ws}/new"]
PIPE_WORDS = ("fifo", "named pipe", "pipe")
DEVICE_WORDS = ("device", "not a regular file", "special file", "not a file")
T = dict(timeout=SLOW)

CASES = [
    # Item 6: absurd counts are refused up front; data that is not a file says what it is.
    Case("absurd-steps-1e21", [*TRAIN, "--steps", "1e21", *NEW]),
    Case("absurd-steps-10^21", [*TRAIN, "--steps", "1000000000000000000000", *NEW]),
    Case("absurd-steps-2^64+1", [*TRAIN, "--steps", "18446744073709551617", *NEW]),
    Case("absurd-epochs-10^12", [*TRAIN, "--epochs", "1000000000000", *NEW]),
    Case("absurd-set-steps=1e21", [*TRAIN, "--set", "steps=1e21", *NEW]),
    Case("absurd-set-steps=10^21", [*TRAIN, "--set", "steps=1000000000000000000000", *NEW]),
    Case("absurd-set-epochs=10^12", [*TRAIN, "--set", "epochs=1000000000000", *NEW]),
    Case("absurd-resume-steps-10^21", [*RESUME, "--steps", "1000000000000000000000",
                                       "--allow-changes"], _vae, writes=RUN, needs=("vae",)),
    Case("absurd-max-new-tokens-10^9", ["sample", "{ws}/run", "--max-new-tokens",
                                        "1000000000"], _text, writes=RUN, needs=("text",)),
    Case("absurd-max-new-tokens-10^21", ["sample", "{ws}/run", "--max-new-tokens",
                                         "1000000000000000000000"], _text, writes=RUN,
         needs=("text",)),
    Case("absurd-binary-data-image-model", [*TRAIN, "--data", "{ws}/blob.bin", *NEW], _blob,
         not_says=("a UTF-8 text file",)),
    Case("absurd-binary-data-text-model", ["train", "transformer", "--preset", "tiny",
                                           "--data", "{ws}/blob.bin", *NEW], _blob,
         not_says=("is a UTF-8 text file",)),
    Case("absurd-fifo-data-text-model", ["train", "transformer", "--preset", "tiny", "--data",
                                         "{ws}/pipe", *NEW], _fifo, says_any=PIPE_WORDS),
    Case("absurd-fifo-data-image-model", [*TRAIN, "--data", "{ws}/pipe", *NEW], _fifo,
         says_any=PIPE_WORDS),
    Case("absurd-devnull-data-text-model", ["train", "transformer", "--preset", "tiny",
                                            "--data", "/dev/null", *NEW],
         says_any=DEVICE_WORDS, not_says=("UTF-8 text file",)),
    Case("absurd-devnull-data-image-model", [*TRAIN, "--data", "/dev/null", *NEW],
         says_any=DEVICE_WORDS, not_says=("UTF-8 text file",)),
    Case("absurd-fifo-eval-data", ["eval", "{ws}/run", "--data", "{ws}/pipe"],
         _with(_vae, _fifo), says_any=PIPE_WORDS, writes=RUN, needs=("vae",)),

    # Ordinary bad input: one line, exit 2, nothing written.
    Case("bad-model-unknown", ["train", "diffusion", *NEW], says=("unknown model",)),
    Case("bad-model-empty", ["train", "", *NEW]),
    Case("bad-backend-jax", ["train", "vae", "--backend", "jax", *NEW], says=("jax",)),
    Case("bad-preset-path", ["train", "vae", "--preset", "../tiny", *NEW]),
    Case("bad-dataset-unknown", [*TRAIN, "--data", "cifar10", *NEW], says=("cifar10",)),
    Case("bad-data-missing-path", [*TRAIN, "--data", "{ws}/nope", *NEW]),
    Case("bad-set-float-for-int", [*TRAIN, "--set", "latent_dim=4.5", *NEW],
         says=("latent_dim",)),
    Case("bad-set-nan", [*TRAIN, "--set", "lr=nan", *NEW], says=("lr",)),
    Case("bad-set-minus-inf", [*TRAIN, "--set", "lr=-inf", *NEW], says=("lr",)),
    Case("bad-set-negative", [*TRAIN, "--set", "latent_dim=-3", *NEW], says=("latent_dim",)),
    Case("bad-set-empty-value", [*TRAIN, "--set", "lr=", *NEW], says=("lr",)),
    Case("bad-set-empty-key", [*TRAIN, "--set", "=4", *NEW]),
    Case("bad-set-arabic-indic-digit", [*TRAIN, "--set", "latent_dim=\u0664", *NEW],
         says=("latent_dim",)),
    Case("bad-set-fullwidth-digits", [*TRAIN, "--set", "latent_dim=\uff11\uff16", *NEW],
         says=("latent_dim",)),
    Case("bad-set-superscript-digit", [*TRAIN, "--set", "latent_dim=\u00b2", *NEW],
         says=("latent_dim",)),
    Case("bad-set-bool-for-int", [*TRAIN, "--set", "latent_dim=true", *NEW],
         says=("latent_dim",)),
    Case("bad-set-steps-fraction", [*TRAIN, "--set", "steps=2.5", *NEW], says=("steps",)),
    Case("bad-set-steps-negative", [*TRAIN, "--set", "steps=-1", *NEW], says=("steps",)),
    Case("bad-set-cyrillic-key", [*TRAIN, "--set", "l\u0430tent_dim=4", *NEW]),
    Case("bad-lr-nan-option", [*TRAIN, "--lr", "nan", *NEW], says=("lr",)),
    Case("bad-steps-negative", [*TRAIN, "--steps", "-5", *NEW], says=("steps",)),
    Case("bad-epochs-zero", [*TRAIN, "--epochs", "0", *NEW], says=("epochs",)),
    Case("bad-resume-empty-folder", ["train", "vae", "--resume", "{ws}/empty"], _empty),
    Case("bad-resume-file", ["train", "vae", "--resume", "{ws}/blob.bin"], _blob),
    Case("bad-resume-missing", ["train", "vae", "--resume", "{ws}/missing"],
         says=("does not exist",)),
    Case("bad-resume-foreign-folder", ["train", "vae", "--resume", "{ws}/notes"], _notes),
    Case("bad-resume-devnull", ["train", "vae", "--resume", "/dev/null"]),
    Case("bad-sample-n-negative", ["sample", "{ws}/run", "--n", "-1"], _vae, writes=RUN,
         needs=("vae",)),
    Case("bad-sample-seed-over-max", ["sample", "{ws}/run", "--seed", "2147483648"], _vae,
         writes=RUN, needs=("vae",)),
    *[Case(f"bad-sample-out-{label}", ["sample", "{ws}/run", "--out", f"{{ws}}/run/{name}"],
           _vae, writes=RUN, needs=("vae",))
      for label, name in (("weights", "model.safetensors"), ("config", "config.json"),
                          ("metrics", "metrics.jsonl"), ("latest", "checkpoints/latest"),
                          ("checkpoint-folder", "checkpoints/step-00000030/x.png"))],
    Case("bad-sample-out-missing-folder", ["sample", "{ws}/run", "--out", "{ws}/nope/x.png"],
         _vae, writes=RUN, needs=("vae",)),
    Case("bad-sample-out-is-a-folder", ["sample", "{ws}/run", "--out", "{ws}/empty"],
         _with(_vae, _empty), writes=RUN, needs=("vae",)),
    Case("bad-sample-text-into-png", ["sample", "{ws}/run", "--out", "{ws}/x.png"], _text,
         writes=RUN, needs=("text",)),
    Case("bad-sample-run-is-a-file", ["sample", "{ws}/blob.bin"], _blob),
    Case("bad-sample-weights-missing", ["sample", "{ws}/run", "--out", "{ws}/x.png"],
         _weights(None), says=("model.safetensors",), writes=RUN, needs=("vae",), **T),
    Case("bad-sample-weights-huge-header", ["sample", "{ws}/run", "--out", "{ws}/x.png"],
         _weights((1 << 62).to_bytes(8, "little") + b"{" * 64), says=("model.safetensors",),
         writes=RUN, needs=("vae",), **T),
    Case("bad-eval-data-text-file-on-image-run", ["eval", "{ws}/run", "--data",
                                                  "{ws}/corpus.txt"], _with(_vae, _corpus),
         writes=RUN, needs=("vae",), **T),
    Case("bad-eval-weights-missing", ["eval", "{ws}/run"], _weights(None),
         says=("model.safetensors",), writes=RUN, needs=("vae",), **T),
    Case("bad-compare-nothing", ["compare"]),
    Case("bad-compare-a-file", ["compare", "{ws}/blob.bin"], _blob),
    Case("bad-compare-empty-folder", ["compare", "{ws}/empty"], _empty),
    Case("bad-data-empty-folder", [*TRAIN, "--data", "{ws}/empty", *NEW], _empty),
    Case("bad-data-idx-gz-truncated", [*TRAIN, "--data", "{ws}/idx", *NEW],
         lambda ws, src: idx_folder(ws / "idx", raw=False, size=700), **T),
    Case("bad-data-idx-raw-truncated", [*TRAIN, "--data", "{ws}/idx", *NEW],
         lambda ws, src: idx_folder(ws / "idx", raw=True, size=None), **T),
    Case("bad-data-idx-zero-bytes", [*TRAIN, "--data", "{ws}/idx", *NEW],
         lambda ws, src: idx_folder(ws / "idx", raw=True, size=0), **T),

    # Item 1: --out naming a folder that is not a genzoo run is refused unless empty;
    # --overwrite replaces only a genzoo run and deletes only what genzoo wrote there.
    Case("out-foreign-weights-and-grid", [*TRAIN, "--steps", "2", "--out", "{ws}/foreign"],
         _foreign({"model.safetensors": b"another tool's weights",
                   "samples.png": b"\x89PNG another tool's grid"})),
    Case("out-foreign-weights-overwrite", [*TRAIN, "--steps", "2", "--out", "{ws}/foreign",
                                           "--overwrite"],
         _foreign({"model.safetensors": b"another tool's weights"})),
    Case("out-foreign-notes", [*TRAIN, "--steps", "2", "--out", "{ws}/foreign"],
         _foreign({"notes.txt": b"keep me\n"})),
    Case("out-foreign-hidden-file", [*TRAIN, "--steps", "2", "--out", "{ws}/foreign"],
         _foreign({".DS_Store": b"\x00\x00\x00\x01Bud1"})),
    Case("out-foreign-metrics-log", [*TRAIN, "--steps", "2", "--out", "{ws}/foreign"],
         _foreign({"metrics.jsonl": b'{"step": 1, "loss": 3}\n'})),
    Case("out-foreign-checkpoints-folder", [*TRAIN, "--steps", "2", "--out", "{ws}/foreign",
                                            "--overwrite"],
         _foreign({"checkpoints/step-00000001/weights.bin": b"\x00" * 64})),
    Case("out-is-a-file", [*TRAIN, "--steps", "2", "--out", "{ws}/blob.bin"], _blob),
    Case("out-empty-folder-is-used", [*TRAIN, "--steps", "2", "--out", "{ws}/empty"], _empty,
         codes=(0,), writes=(("empty", "any"),), **T),
    Case("out-overwrite-keeps-foreign-files", [*TRAIN, "--steps", "5", "--checkpoint-every",
                                               "5", "--out", "{ws}/run", "--overwrite"],
         _genzoo_run_with_foreign_files, codes=(0,), writes=WRITES_RUN, needs=("vae",),
         after=_status_is("complete", 5), **T),

    # Item 2: no write or delete follows a link out of the run folder. Exit 0 or 2 for
    # links to files (genzoo may replace the link, or refuse); 2 for checkpoints/.
    Case("link-checkpoints-folder-overwrite", [*TRAIN, "--steps", "5", "--out", "{ws}/run",
                                               "--overwrite"], _checkpoints_link(_vae),
         writes=RUN, needs=("vae",), **T),
    Case("link-checkpoints-folder-resume", RESUME, _checkpoints_link(resumable), writes=RUN,
         needs=("vae",), **T),
    Case("link-checkpoints-folder-sample-out", ["sample", "{ws}/run", "--out",
                                                "{ws}/run/checkpoints/x.png"],
         _checkpoints_link(_vae), writes=RUN, needs=("vae",), **T),
    Case("link-files-overwrite", [*TRAIN, "--steps", "5", "--checkpoint-every", "5", "--out",
                                  "{ws}/run", "--overwrite"], _overwrite_through_links,
         codes=(0, 2), writes=WRITES_RUN, needs=("vae",), **T),
    Case("link-lock-resume", RESUME, _resume_links(".lock"), codes=(0, 2), writes=WRITES_RUN,
         warnings=True, needs=("vae",), **T),
    Case("link-records-and-weights-resume", RESUME,
         _resume_links("metrics.jsonl", "meta.json", "model.safetensors", "samples.png"),
         codes=(0, 2), writes=WRITES_RUN, warnings=True, needs=("vae",), **T),
    Case("link-latest-resume", RESUME, _resume_links("checkpoints/latest"), codes=(0, 2),
         writes=WRITES_RUN, warnings=True, needs=("vae",), **T),
    Case("link-step-folder-pruned-on-resume", [*RESUME, "--set", "keep_checkpoints=1",
                                               "--allow-changes"],
         _resume_links("checkpoints/step-00000010"), codes=(0, 2), writes=WRITES_RUN,
         warnings=True, needs=("vae",), **T),
    Case("link-sample-default-out", ["sample", "{ws}/run", "--n", "4"],
         _sample_link("sample-seed0.png"), codes=(0, 2), writes=WRITES_RUN, needs=("vae",),
         **T),
    Case("link-sample-out-samples-png", ["sample", "{ws}/run", "--n", "4", "--out",
                                         "{ws}/run/samples.png"], _sample_link("samples.png"),
         codes=(0, 2), writes=WRITES_RUN, needs=("vae",), **T),

    # Item 3: damaged state is recovered (the newest checkpoint that verifies) or refused
    # by name, never a traceback. Warnings allowed in recoveries.
    *[Case(f"damaged-latest-{label}", RESUME, _latest(content), codes=(0,), warnings=True,
           writes=WRITES_RUN, needs=("vae",), after=_from(20), **T)
      for label, content in (("binary", bytes(range(256))),
                             ("huge", b"step-00000020" + b"9" * (16 << 20)),
                             ("dotdot", b"../../etc"), ("empty", b""),
                             ("nul-bytes", b"step-\x00\x00\x00\x0020\n"))],
    Case("damaged-foreign-entries-in-checkpoints", RESUME, _foreign_in_checkpoints,
         codes=(0,), warnings=True, writes=WRITES_RUN, needs=("vae",), after=_from(20), **T),
    Case("damaged-file-named-like-a-checkpoint", RESUME, _file_named_step, codes=(0, 2),
         warnings=True, writes=WRITES_RUN, needs=("vae",), **T),
    Case("damaged-metrics-step-text-and-null", RESUME,
         _metrics('{"event": "train", "step": "x", "loss": 1}',
                  '{"event": "train", "step": null, "loss": 1}'),
         codes=(0,), warnings=True, writes=WRITES_RUN, needs=("vae",), after=_from(20), **T),
    Case("damaged-metrics-step-1e400-and-array", RESUME,
         _metrics('{"event": "train", "step": 1e400, "loss": 1}', '[{"step": 40}]'),
         codes=(0,), warnings=True, writes=WRITES_RUN, needs=("vae",), after=_from(20), **T),
    Case("damaged-state-json-nested", RESUME, _nested_state, codes=(0,), warnings=True,
         writes=WRITES_RUN, needs=("vae",), after=_from(10), **T),
    Case("damaged-config-nested-sample", ["sample", "{ws}/run", "--out", "{ws}/x.png"],
         _run_file("config.json", NESTED), says=("config.json",), writes=RUN, needs=("vae",)),
    Case("damaged-config-nested-eval", ["eval", "{ws}/run"], _run_file("config.json", NESTED),
         says=("config.json",), writes=RUN, needs=("vae",)),
    Case("damaged-config-nested-resume", RESUME, _run_file("config.json", NESTED),
         says=("config.json",), writes=RUN, needs=("vae",)),
    Case("damaged-config-nested-compare-run", ["compare", "{ws}/run"],
         _run_file("config.json", NESTED), says=("config.json",), writes=RUN, needs=("vae",)),
    Case("damaged-config-nested-compare-folder", ["compare", "{ws}/study"],
         _study("config.json", NESTED), codes=(0,), warnings=True, needs=("vae",)),
    Case("damaged-config-huge-sample", ["sample", "{ws}/run", "--out", "{ws}/x.png"],
         _run_file("config.json", HUGE_JSON), says=("config.json",), writes=RUN,
         needs=("vae",)),
    Case("damaged-config-huge-compare-folder", ["compare", "{ws}/study"],
         _study("config.json", HUGE_JSON), codes=(0,), warnings=True, needs=("vae",)),
    Case("damaged-meta-nested-sample", ["sample", "{ws}/run", "--out", "{ws}/x.png"],
         _run_file("meta.json", NESTED), codes=(0, 2), warnings=True,
         writes=(("run", "lock"), ("x.png", "any")), needs=("vae",), **T),
    Case("damaged-meta-nested-compare-run", ["compare", "{ws}/run"],
         _run_file("meta.json", NESTED), codes=(0, 2), warnings=True, writes=RUN,
         needs=("vae",)),
    Case("damaged-meta-nested-compare-folder", ["compare", "{ws}/study"],
         _study("meta.json", NESTED), codes=(0,), warnings=True, needs=("vae",)),
    Case("damaged-meta-huge-compare-folder", ["compare", "{ws}/study"],
         _study("meta.json", HUGE_JSON), codes=(0,), warnings=True, needs=("vae",)),
    Case("damaged-meta-nested-resume", RESUME, _run_file("meta.json", NESTED), codes=(0, 2),
         warnings=True, writes=WRITES_RUN, needs=("vae",), **T),
    Case("damaged-eval-nested-compare-run", ["compare", "{ws}/run"],
         _run_file("eval.json", NESTED), codes=(0, 2), warnings=True, writes=RUN,
         needs=("vae",)),
    Case("damaged-eval-nested-compare-folder", ["compare", "{ws}/study"],
         _study("eval.json", NESTED), codes=(0,), warnings=True, needs=("vae",)),
    Case("damaged-eval-huge-compare-folder", ["compare", "{ws}/study"],
         _study("eval.json", HUGE_JSON), codes=(0,), warnings=True, needs=("vae",)),
    Case("damaged-metrics-nested-line-compare-killed", ["compare", "{ws}/run"],
         _run_file("metrics.jsonl", NESTED + "\n", status="running"), codes=(0,),
         warnings=True, writes=RUN, needs=("vae",)),

    Case("absurd-batch-size-10^21", [*TRAIN, "--batch-size", "1000000000000000000000", *NEW],
         **T),
    Case("absurd-set-latent-dim-10^21", [*TRAIN, "--set", "latent_dim=1000000000000000000000",
                                         *NEW], **T),
    Case("absurd-train-seed-10^21", [*TRAIN, "--seed", "1000000000000000000000", *NEW]),
    Case("absurd-eval-samples-10^9", ["eval", "{ws}/run", "--samples", "1000000000"], _vae,
         writes=RUN, needs=("vae",)),
    Case("absurd-top-k-10^21", ["sample", "{ws}/run", "--top-k", "1000000000000000000000",
                                "--max-new-tokens", "5"], _text, codes=(0, 2),
         writes=WRITES_RUN, needs=("text",), **T),
    Case("bad-temperature-nan", ["sample", "{ws}/run", "--temperature", "nan",
                                 "--max-new-tokens", "5"], _text, writes=RUN, needs=("text",),
         **T),
    Case("bad-prompt-outside-the-vocabulary", ["sample", "{ws}/run", "--prompt", "\u2603\u00e9",
                                               "--max-new-tokens", "5"], _text, codes=(0, 2),
         writes=WRITES_RUN, warnings=True, needs=("text",), **T),
    Case("bad-lr-overflow", [*TRAIN, "--lr", "1e400", *NEW], says=("lr",)),
    Case("bad-set-log-every-zero", [*TRAIN, "--set", "log_every=0", *NEW]),
    Case("out-link-to-a-foreign-folder", [*TRAIN, "--steps", "2", "--out", "{ws}/link"],
         _linked_out_folder),
    Case("out-inside-a-checkpoint", [*TRAIN, "--steps", "2", "--out",
                                     "{ws}/run/checkpoints/step-00000030"], _vae, writes=RUN,
         needs=("vae",)),
    Case("link-lock-overwrite", [*TRAIN, "--steps", "5", "--out", "{ws}/run", "--overwrite"],
         _resume_links(".lock"), codes=(0, 2), writes=WRITES_RUN, needs=("vae",), **T),
    Case("link-config-resume-allow-changes", [*RESUME, "--steps", "40", "--allow-changes"],
         _config_link_resume, codes=(0, 2), writes=WRITES_RUN, warnings=True, needs=("vae",),
         **T),
    Case("damaged-config-fifo-sample", ["sample", "{ws}/run", "--out", "{ws}/x.png"],
         _fifo_in_run("config.json"), says=("config.json",), writes=RUN, needs=("vae",)),
    Case("damaged-config-folder-sample", ["sample", "{ws}/run", "--out", "{ws}/x.png"],
         _with(_vae, lambda ws, src: ((ws / "run" / "config.json").unlink(),
                                      (ws / "run" / "config.json").mkdir())),
         says=("config.json",), writes=RUN, needs=("vae",)),
    Case("damaged-meta-fifo-compare-run", ["compare", "{ws}/run"], _fifo_in_run("meta.json"),
         codes=(0, 2), warnings=True, writes=RUN, needs=("vae",)),
    Case("damaged-metrics-fifo-compare-killed", ["compare", "{ws}/run"],
         _fifo_in_run("metrics.jsonl", status="running"), codes=(0, 2), warnings=True,
         writes=RUN, needs=("vae",)),
    Case("damaged-eval-fifo-compare-folder", ["compare", "{ws}/study"],
         _with(_study("eval.json", "{}"), lambda ws, src: (
             (ws / "study" / "bad" / "eval.json").unlink(),
             os.mkfifo(ws / "study" / "bad" / "eval.json"))), codes=(0,), warnings=True,
         needs=("vae",)),
    Case("damaged-latest-fifo", RESUME, _latest_special("fifo"), codes=(0,), warnings=True,
         writes=WRITES_RUN, needs=("vae",), after=_from(20), **T),
    Case("damaged-latest-folder", RESUME, _latest_special("dir"), codes=(0, 2), warnings=True,
         writes=WRITES_RUN, needs=("vae",), **T),

    # Item 4: no run is stuck. Killed before its first checkpoint, a run resumes from
    # step 0, and training into its folder again needs no --overwrite.
    # Its leftover temporary files (.model.safetensors.tmp-PID) go on resume.
    Case("killed-before-checkpoint-resumes-from-0", [*RESUME, "--steps", "10",
                                                     "--allow-changes"],
         _killed_with_temporaries, codes=(0,), warnings=True, writes=WRITES_RUN,
         needs=("killed",), after=_no_temporaries, **T),
    Case("killed-before-checkpoint-train-again", [*TRAIN, "--steps", "5", "--out", "{ws}/run"],
         _killed, codes=(0,), warnings=True, writes=WRITES_RUN, needs=("killed",),
         after=_status_is("complete", 5), **T),
]


@dataclass
class Outcome:
    ws: Path
    result: subprocess.CompletedProcess[str] | None = None
    before: dict[str, tuple] = field(default_factory=dict)
    after: dict[str, tuple] = field(default_factory=dict)
    error: BaseException | None = None  # a setup that failed, or a command that hung
    seconds: float = 0.0


def _probe(case: Case, ws: Path, sources: dict[str, Path]) -> Outcome:
    outcome = Outcome(ws)
    try:
        (ws / "cwd").mkdir(parents=True)  # the command's current folder: nothing lands there
        if case.setup is not None:
            case.setup(ws, sources)
        outcome.before = snapshot(ws)
        args = [a.replace("{ws}", str(ws)) for a in case.args]
        start = time.monotonic()
        try:
            outcome.result = run_cli(args, cwd=ws / "cwd", timeout=case.timeout)
        finally:
            outcome.seconds = time.monotonic() - start
        outcome.after = snapshot(ws)
    except BaseException as exc:  # re-raised in the case's own test
        outcome.error = exc
    return outcome


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory) -> dict[str, Outcome]:
    """Every selected case, run once, a few at a time (each is a subprocess that mostly
    waits on imports and the disk; the slow ones start first)."""
    from concurrent.futures import ThreadPoolExecutor

    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_probe"
                and item.module is sys.modules[__name__]]
    needs = sorted({name for case in selected for name in case.needs})
    workers = int(os.environ.get("GENZOO_PROBE_WORKERS") or max(2, os.cpu_count() or 2))
    with ThreadPoolExecutor(workers) as pool:
        built = dict(zip(needs, pool.map(
            lambda name: SOURCES[name](tmp_path_factory.mktemp(f"probe-{name}")), needs)))
        root = tmp_path_factory.mktemp("probes")
        order = sorted(selected, key=lambda c: -c.timeout)
        done = dict(zip([c.id for c in order], pool.map(
            lambda c: _probe(c, root / re.sub(r"[^\w.-]", "_", c.id), built), order)))
    log = os.environ.get("GENZOO_PROBES_LOG")
    if log:
        with open(log, "w") as f:
            for case in selected:
                got = done[case.id]
                f.write(json.dumps({"id": case.id, "seconds": round(got.seconds, 2),
                                    "rc": got.result and got.result.returncode,
                                    "stderr": got.result and got.result.stderr[-1500:],
                                    "error": repr(got.error)[:1500] if got.error else None})
                        + "\n")
    return done


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_probe(case: Case, outcomes: dict[str, Outcome]) -> None:
    got = outcomes[case.id]
    if got.error is not None:
        raise got.error
    result, ws = got.result, got.ws
    check_stderr(result, case.codes, case.warnings)
    err = result.stderr
    if result.returncode != 0:
        for fragment in case.says:
            assert fragment in err, err
        if case.says_any:
            assert any(w in err.lower() for w in case.says_any), err
    for fragment in case.not_says:
        assert fragment not in err, err

    writes = case.writes
    if result.returncode != 0:  # a refusal writes nothing: at most a run's lock
        writes = tuple((folder, "lock") for folder, _ in writes)
    wrong = {p: c for p, c in changes(got.before, got.after).items() if not _allowed(p, writes)}
    assert not wrong, f"changed outside what genzoo may write: {wrong}; stderr: {err[-800:]!r}"
    if result.returncode == 0 and case.after is not None:
        case.after(ws, result)
    shutil.rmtree(ws, ignore_errors=True)  # passed: its big files (up to 65 MiB) go


def test_the_snapshot_sees_content_names_and_links(tmp_path: Path) -> None:
    """The snapshot helper itself: a changed byte, a new name, a retargeted link and a
    file behind a link are all seen; a link is never followed."""
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b").write_bytes(b"2")
    (tmp_path / "l").symlink_to(tmp_path / "d")
    os.mkfifo(tmp_path / "p")
    first = snapshot(tmp_path)
    assert first["l"] == ("link", str(tmp_path / "d")) and "l/b" not in first
    assert first["p"][0] == "special"
    (tmp_path / "a").write_bytes(b"3")
    (tmp_path / "l").unlink()
    (tmp_path / "l").symlink_to(tmp_path / "a")
    (tmp_path / "d" / "c").write_bytes(b"")
    assert set(changes(first, snapshot(tmp_path))) == {"a", "l", "d/c"}
    assert _allowed("run/checkpoints/step-00000010/state.json", WRITES_RUN)
    assert not _allowed("run/checkpoints/step-00000010-backup/state.json", WRITES_RUN)
    assert not _allowed("run/checkpoints/other-tool", WRITES_RUN)
    assert not _allowed("run/notes.txt", WRITES_RUN) and _allowed("run/.lock", RUN)
    assert not _allowed("outside/x", WRITES_RUN) and not _allowed("run/meta.json", RUN)
