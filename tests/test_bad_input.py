"""Absurd counts and data paths that are not data: one line on stderr, exit status 2.

Every case runs the CLI as a user would and checks that nothing was started: no
traceback, no run folder, and (for a named pipe) no wait for a writer.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest

from helpers import run_genzoo
from genzoo.config import LIMITS, MAX_NEW_TOKENS, MAX_STEPS
from genzoo.errors import ConfigError


def _refused(result, message: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("genzoo: error: "), result.stderr
    assert message in lines[0], lines[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--steps", "1000000000000000000000"],
     "invalid value for 'steps': must be at most 1,000,000,000, not about 10**21"),
    (["--steps", "1e21"], "'1e21' is not a valid integer"),
    (["--set", "steps=1e21"], "invalid value for 'steps': expected an integer, got '1e21' "
                              "(write it out in digits, without an exponent or a decimal point)"),
    (["--set", "steps=100000000000000000000000"],
     "invalid value for 'steps': must be at most 1,000,000,000, not about 10**23"),
    (["--set", "steps=" + "9" * 5000], "expected an integer, got '99999999999999999999... "
                                       "(5000 characters)'"),
    (["--epochs", "1000000000000"],
     "invalid value for 'epochs': must be at most 1,000,000, not 1000000000000"),
    (["--set", "epochs=1000000000000"], "invalid value for 'epochs': must be at most 1,000,000"),
    (["--epochs", "1000000", "--batch-size", "1"],  # 1,439 steps an epoch on the digits
     "1,000,000 epochs of 1,439 steps are 1,439,000,000 steps, more than the 1,000,000,000"),
    (["--batch-size", "10000000"], "invalid value for 'batch_size': must be at most 1,000,000"),
    (["--checkpoint-every", "100000000000000000000000"],
     "invalid value for 'checkpoint_every': must be at most 1,000,000,000"),
    (["--set", "log_every=10000000000"], "invalid value for 'log_every': must be at most"),
    (["--set", "eval_every=10000000000"], "invalid value for 'eval_every': must be at most"),
    (["--set", "eval_batches=10000000000"], "invalid value for 'eval_batches': must be at most"),
    (["--set", "warmup_steps=10000000000"], "invalid value for 'warmup_steps': must be at most"),
    (["--set", "keep_checkpoints=10000000"],
     "invalid value for 'keep_checkpoints': must be at most 1,000,000"),
    (["--set", "latent_dim=1000000000000000000000"],  # a model's field: no overflow
     "invalid value for 'latent_dim': must be at most 1,000,000,000, not about 10**21"),
    (["--set", "hidden=32,100000000000"], "invalid value for 'hidden': must be at most"),
], ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else "")
def test_an_absurd_count_is_refused_before_training(tmp_path, args, message) -> None:
    out = tmp_path / "run"
    _refused(run_genzoo("train", "vae", *args, "--out", str(out), timeout=120), message)
    assert not out.exists()


def test_an_absurd_max_new_tokens_is_refused(tmp_path) -> None:
    _refused(run_genzoo("sample", str(tmp_path), "--max-new-tokens", "1000000000"),
             "Invalid value for '--max-new-tokens': 1000000000 is not in the range "
             f"1<=x<={MAX_NEW_TOKENS}")


def test_the_api_shares_the_bounds(tmp_path) -> None:
    import genzoo
    from genzoo.api import plan

    with pytest.raises(ConfigError, match="'steps': must be at most 1,000,000,000, not about "
                                          r"10\*\*21"):
        plan("vae", steps=10**21)
    with pytest.raises(ConfigError, match="'epochs': must be at most 1,000,000"):
        genzoo.train("vae", epochs=10**12, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    for name, most in LIMITS.items():  # the largest value passes, one more does not
        assert getattr(plan("vae", **{name: most}).train_config, name) == most
        with pytest.raises(ConfigError, match=f"'{name}': must be at most {most:,}"):
            plan("vae", **{name: most + 1})
    assert LIMITS["steps"] == MAX_STEPS


def test_text_generation_refuses_an_absurd_length() -> None:
    import genzoo

    model = genzoo.create("transformer", preset="tiny")
    with pytest.raises(ConfigError, match="max_new_tokens must be at most 1,000,000, not "
                                          "1000000000"):
        model.generate("a", max_new_tokens=10**9)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        model.stream("a", max_new_tokens=MAX_NEW_TOKENS + 1)


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def _make(tmp_path: Path, what: str) -> Path:
    path = tmp_path / what
    if what == "random.bin":
        path.write_bytes(bytes(range(256)) * 4 + os.urandom(4096))
    elif what == "picture.png":
        path.write_bytes(_png())
    elif what == "utf16.txt":
        path.write_bytes("to be or not to be".encode("utf-16"))
    elif what == "empty.txt":
        path.write_bytes(b"")
    elif what == "corpus.txt":
        path.write_text("to be or not to be " * 20)
    elif what == "folder":
        path.mkdir()
    elif what == "pipe":
        os.mkfifo(path)
    elif what == "train-images-idx3-ubyte":
        path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 1, 2, 2) + bytes(4))
    return path


@pytest.mark.parametrize(("model", "what", "message"), [
    ("transformer", "random.bin", "random.bin is a binary file, not text; a text model trains "
                                  "on UTF-8 text"),
    ("transformer", "picture.png", "picture.png is a binary file (a PNG image), not text"),
    ("transformer", "utf16.txt", "utf16.txt is UTF-16 text, not UTF-8; save it as UTF-8"),
    ("transformer", "empty.txt", "empty.txt is an empty file; a text model needs UTF-8 text "
                                 "of at least two characters"),
    ("transformer", "folder", "folder is a directory, but this model needs text (a UTF-8 text "
                              "file)"),
    ("transformer", "pipe", "pipe is a named pipe (FIFO), not a file or folder"),
    ("transformer", "/dev/null", "/dev/null is a character device, not a file or folder"),
    ("vae", "pipe", "pipe is a named pipe (FIFO), not a file or folder"),
    ("vae", "/dev/null", "/dev/null is a character device, not a file or folder"),
    ("vae", "empty.txt", "empty.txt is an empty file, but this model needs images: a directory "
                         "of IDX files"),
    ("vae", "corpus.txt", "corpus.txt is a text file, but this model needs images"),
    ("vae", "random.bin", "random.bin is a binary file, but this model needs images"),
    ("vae", "picture.png", "picture.png is a PNG image; this model trains on a directory of "
                           "IDX files"),
    ("vae", "train-images-idx3-ubyte", "train-images-idx3-ubyte is one IDX file; give the "
                                       "directory that holds it"),
])
def test_data_that_is_not_what_the_model_reads_is_named(tmp_path, model, what, message) -> None:
    data = Path(what) if what.startswith("/") else _make(tmp_path, what)
    out = tmp_path / "run"
    result = run_genzoo("train", model, "--preset", "tiny", "--data", str(data),
                        "--out", str(out), timeout=120)  # a pipe read would hang until then
    _refused(result, message)
    assert not out.exists()


def test_an_idx_name_that_is_a_pipe_is_named_not_read(tmp_path) -> None:
    folder = tmp_path / "idx"
    folder.mkdir()
    os.mkfifo(folder / "train-images-idx3-ubyte")
    result = run_genzoo("train", "vae", "--data", str(folder), "--out", str(tmp_path / "run"),
                        timeout=120)
    _refused(result, "train-images-idx3-ubyte is a named pipe (FIFO), not a file or folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_a_text_file_without_read_permission_is_named(tmp_path) -> None:
    corpus = _make(tmp_path, "corpus.txt")
    corpus.chmod(0)
    result = run_genzoo("train", "transformer", "--data", str(corpus), "--out",
                        str(tmp_path / "run"))
    _refused(result, f"cannot read {corpus}: Permission denied")
