"""The data layer: real datasets, verification of bad files, deterministic batches."""

from __future__ import annotations

import gzip
import hashlib
import json

import numpy as np
import pytest

from genzoo.data import ImageBatches, TextBatches, TextData, load_dataset
from genzoo.data.idx import parse_idx
from genzoo.errors import DataError
from helpers import run_genzoo


def _sums(shared_data) -> dict[str, str]:
    lines = (shared_data / "SHA256SUMS").read_text().split("\n")
    return {name.strip().lstrip("*"): digest for digest, name in
            (line.split(maxsplit=1) for line in lines if line.strip())}


def test_shared_files_match_their_published_sha256(shared_data) -> None:
    sums = _sums(shared_data)
    assert len(sums) == 9
    for name, digest in sums.items():
        assert hashlib.sha256((shared_data / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize(("name", "train", "val", "test"), [
    ("mnist", 54000, 6000, 10000), ("fashion-mnist", 54000, 6000, 10000),
    ("digits", 1439, 179, 179),
])
def test_image_datasets_are_float_nhwc_in_unit_range_with_labels(shared_data, name, train,
                                                                  val, test) -> None:
    data = load_dataset(name)
    assert (len(data.train), len(data.val), len(data.test)) == (train, val, test)
    for split in (data.train, data.val, data.test):
        assert split.dtype == np.float32 and split.ndim == 4 and split.shape[-1] == 1
        assert split.min() == 0.0 and split.max() == 1.0
    assert data.train_labels is not None and len(data.test_labels) == test
    assert set(np.unique(data.test_labels)) == set(range(10))


def test_mnist_decodes_to_the_published_statistics(shared_data) -> None:
    data = load_dataset("mnist")
    counts = np.bincount(np.concatenate([data.train_labels, data.val_labels]))
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert data.test.mean() * 255 == pytest.approx(33.79, abs=0.01)


def test_text_datasets(shared_data) -> None:
    shakespeare = load_dataset("tiny-shakespeare")
    assert len(shakespeare.text) == 1_115_394 and len(shakespeare.tokenizer) == 65
    assert shakespeare.text.startswith("First Citizen:")
    # nanoGPT's split, to the character: train is data[:int(n * 0.9)].
    assert (len(shakespeare.train), len(shakespeare.val)) == (1_003_854, 111_540)
    assert shakespeare.tokenizer.decode(shakespeare.val[:5]) == shakespeare.text[1_003_854:][:5]
    docs = load_dataset("python-docs")
    assert docs.kind == "text" and len(docs.text) > 400_000
    assert docs.tokenizer.decode(docs.train[:6]) == docs.text[:6]


def test_a_text_file_by_path_and_its_errors(tmp_path) -> None:
    good = tmp_path / "corpus.txt"
    good.write_text("to be or not to be " * 20, encoding="utf-8")
    data = load_dataset(str(good), "text")
    assert data.info.vocab == " benort"
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt is not UTF-8 text: invalid byte 0xe9 at "
                                        r"byte offset 3"):
        load_dataset(str(bad))
    with pytest.raises(DataError, match="fewer than one window of block_size \\+ 1 = 1025"):
        data.train_batches(4, seed=0, block_size=1024)
    with pytest.raises(DataError, match="needs images"):
        load_dataset(str(good), "image")
    (tmp_path / "one.txt").write_text("a")
    with pytest.raises(DataError, match="text 'one.txt' has one character; a model needs at "
                                        "least two"):
        load_dataset(str(tmp_path / "one.txt"))


def test_labels_must_be_whole_numbers_from_zero(tmp_path, shared_data) -> None:
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz"):
        (tmp_path / name).write_bytes((shared_data / "mnist" / name).read_bytes())
    labels = tmp_path / "t10k-labels-idx1-ubyte"  # int8, every label -1
    labels.write_bytes(b"\x00\x00\x09\x01" + np.array([10000], ">u4").tobytes()
                       + bytes([0xFF]) * 10000)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: labels must be whole numbers "
                                        "from 0, found -1"):
        load_dataset(str(tmp_path))


def test_a_folder_that_cannot_be_read_is_one_error_naming_it(tmp_path, monkeypatch) -> None:
    """Python 3.11's ``is_file()`` raises on a folder without search permission (root
    bypasses permissions, so the denial is simulated)."""
    from pathlib import Path

    folder = tmp_path / "idx"
    folder.mkdir()

    def denied(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "is_file", denied)
    with pytest.raises(DataError, match=f"cannot read {folder}: Permission denied"):
        load_dataset(str(folder))


def test_a_relative_data_path_is_recorded_absolute(tmp_path, monkeypatch) -> None:
    """``genzoo eval`` and ``--resume`` must find the data from any working directory."""
    import genzoo.api as api
    from genzoo.evaluation import eval_path

    (tmp_path / "corpus.txt").write_text("to be or not to be " * 20)
    monkeypatch.chdir(tmp_path)
    planned = api.plan("transformer", data="corpus.txt")
    assert planned.data == str(tmp_path / "corpus.txt")
    assert api.plan("transformer", data="tiny-shakespeare").data == "tiny-shakespeare"
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({**planned.to_json(),
                                                "data_info": {"kind": "text", "vocab": "abc"}}))
    assert eval_path(run, "corpus.txt") == run / "eval.json"  # the run's own data
    assert eval_path(run, "tiny-shakespeare") == run / "eval-tiny-shakespeare.json"


def _idx(tmp_path, payload: bytes, name="t10k-images-idx3-ubyte"):
    path = tmp_path / name
    path.write_bytes(payload)
    return path


@pytest.mark.parametrize(("data", "message"), [
    (b"\x00\x00\x08\x03" + np.array([2, 3, 3], ">u4").tobytes() + bytes(17),
     "truncated or padded: header says 2x3x3 \\(18 payload bytes\\) but the file holds 17"),
    (b"\x89PNG" + bytes(40), "is not an IDX file \\(bad magic number 89504e47\\)"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    (b"", "is not an IDX file"),
    # 65536**4 elements: a product in int64 wraps to 0 and passed for an empty payload
    (b"\x00\x00\x08\x04" + np.array([65536] * 4, ">u4").tobytes(),
     "header says 65536x65536x65536x65536 \\(18446744073709551616 payload bytes\\) but "
     "the file holds 0"),
])
def test_broken_idx_files_are_named(tmp_path, data: bytes, message: str) -> None:
    path = _idx(tmp_path, data)
    with pytest.raises(DataError, match=f"{path}.*{message}" if message[0] != "i" else message):
        parse_idx(path.read_bytes(), path)


def test_a_broken_idx_directory_fails_in_the_cli_with_one_line(shared_data, tmp_path) -> None:
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes((shared_data / "mnist" / name).read_bytes())
    raw = gzip.decompress((shared_data / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes())
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    result = run_genzoo("train", "vae", "--preset", "tiny", "--data", str(tmp_path),
                        "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "t10k-images-idx3-ubyte.gz is truncated or padded" in result.stderr
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"junk" * 10)
    result = run_genzoo("train", "vae", "--data", str(tmp_path), "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "is not a valid gzip file" in result.stderr


def test_image_batches_are_a_pure_function_of_the_step() -> None:
    x = np.arange(100, dtype=np.float32).reshape(100, 1, 1, 1)
    a, b = ImageBatches(x, 10, seed=1), ImageBatches(x, 10, seed=1)
    first_epoch = np.concatenate([a(s) for s in range(10)]).ravel()
    assert sorted(first_epoch.tolist()) == list(range(100))  # each example once per epoch
    assert np.array_equal(a(13), b(13)) and np.array_equal(a(3), b(3))
    assert not np.array_equal(a(0), a(10))  # a new order each epoch
    assert not np.array_equal(a(0), ImageBatches(x, 10, seed=2)(0))
    with pytest.raises(DataError, match="fewer than one batch of 200"):
        ImageBatches(x, 200, seed=0)


def test_text_batches_are_windows_of_block_size_plus_one() -> None:
    data = TextData("t", "abcdefghij" * 50)
    batches = data.train_batches(batch_size=4, seed=0, block_size=8)
    batch = batches(7)
    assert batch.shape == (4, 9) and batch.dtype == np.int64
    assert np.array_equal(batch, data.train_batches(4, 0, 8)(7))
    assert all(data.tokenizer.decode(row) in data.text for row in batch)  # contiguous windows
    assert isinstance(batches, TextBatches)


def test_zero_sized_images_and_float_labels_are_refused(tmp_path) -> None:
    from genzoo.data.images import load_idx_dir

    def idx(name: str, code: int, dims: tuple[int, ...], payload: bytes) -> None:
        header = bytes([0, 0, code, len(dims)]) + np.array(dims, ">u4").tobytes()
        (tmp_path / name).write_bytes(header + payload)

    idx("train-images-idx3-ubyte", 0x08, (20, 8, 0), b"")
    with pytest.raises(DataError, match="expected uint8 images \\(N, H, W\\), found uint8 "
                                        "\\(20, 8, 0\\)"):
        load_idx_dir(tmp_path)
    idx("train-images-idx3-ubyte", 0x08, (20, 4, 4), bytes(320))
    idx("train-labels-idx1-ubyte", 0x0D, (20,), bytes(80))  # float32 labels
    with pytest.raises(DataError, match="labels must be whole numbers, found float32 values"):
        load_idx_dir(tmp_path)


def test_a_run_made_with_a_relative_data_path_says_where_it_is_found(tmp_path,
                                                                    monkeypatch) -> None:
    import genzoo
    from genzoo.errors import LookupFailed

    (tmp_path / "corpus.txt").write_text("to be or not to be " * 40)
    monkeypatch.chdir(tmp_path)
    run = genzoo.train("transformer", preset="tiny", data="corpus.txt", steps=2,
                       out=tmp_path / "run").path
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "dataset": "corpus.txt"}))  # old
    monkeypatch.chdir(run)  # elsewhere: the relative path no longer resolves
    with pytest.raises(LookupFailed, match="a path relative to the folder it was trained "
                                           "from .*; run this from that folder$"):
        genzoo.resume(run, steps=4, allow_changes=True)
    with pytest.raises(LookupFailed, match="run this from that folder, or pass --data$"):
        genzoo.evaluate(run)
