"""Downloads, tested against a local HTTP server serving copies of ../shared/data."""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
import time

import pytest

from genzoo.data import download as dl
from genzoo.errors import DataError
from helpers import run_genzoo

LABELS = "mnist/t10k-labels-idx1-ubyte.gz"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


@pytest.fixture
def www(tmp_path, shared_data):
    """A served directory: good copies of MNIST, plus corrupt and truncated variants."""
    root = tmp_path / "www"
    shutil.copytree(shared_data / "mnist", root / "mnist")
    good = (root / LABELS).read_bytes()
    corrupt = bytearray(good)
    corrupt[100] ^= 0xFF
    (root / "corrupt" / "mnist").mkdir(parents=True)
    (root / "corrupt" / LABELS).write_bytes(bytes(corrupt))
    (root / "truncated" / "mnist").mkdir(parents=True)
    (root / "truncated" / LABELS).write_bytes(good[:1000])
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_server():
    """A server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def _files(directory):
    return sorted(p.name for p in directory.rglob("*") if p.is_file())


def test_a_good_file_is_downloaded_verified_and_placed(www, tmp_path, monkeypatch):
    monkeypatch.setenv("GENZOO_MIRROR", www)
    path = dl.download(dl.KNOWN_FILES[LABELS], tmp_path / "cache")
    assert path == tmp_path / "cache" / LABELS
    dl.verify_file(path, dl.KNOWN_FILES[LABELS])
    assert _files(tmp_path / "cache") == ["t10k-labels-idx1-ubyte.gz"]


@pytest.mark.parametrize(("variant", "message"), [
    ("corrupt", "sha256 does not match"),
    ("truncated", "sent 1000 bytes, expected 4542"),
])
def test_a_bad_download_is_refused_and_never_placed(www, tmp_path, monkeypatch, variant, message):
    monkeypatch.setenv("GENZOO_MIRROR", f"{www}/{variant}")
    with pytest.raises(DataError, match=message):
        dl.download(dl.KNOWN_FILES[LABELS], tmp_path / "cache")
    assert _files(tmp_path / "cache") == []  # no partial file left behind


def test_a_server_that_does_not_answer_times_out(silent_server, tmp_path, monkeypatch):
    monkeypatch.setenv("GENZOO_MIRROR", silent_server)
    monkeypatch.setenv("GENZOO_DOWNLOAD_TIMEOUT", "1")
    start = time.monotonic()
    with pytest.raises(DataError, match="timed out"):
        dl.download(dl.KNOWN_FILES[LABELS], tmp_path / "cache")
    assert time.monotonic() - start < 10


def test_the_second_mirror_is_used_when_the_first_fails(www, tmp_path, monkeypatch):
    monkeypatch.delenv("GENZOO_MIRROR", raising=False)
    monkeypatch.setitem(dl.MIRRORS, "mnist", (f"{www}/missing/mnist/", f"{www}/mnist/"))
    assert dl.download(dl.KNOWN_FILES[LABELS], tmp_path / "cache").is_file()


def test_train_downloads_verifies_caches_and_trains(www, tmp_path):
    env = {"GENZOO_DATA_DIR": None, "XDG_CACHE_HOME": str(tmp_path / "xdg"),
           "GENZOO_MIRROR": www}
    first = run_genzoo("train", "vae", "--data", "mnist", "--preset", "tiny", "--steps", "5",
                       "--out", str(tmp_path / "run1"), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("genzoo: downloading mnist/") == 4
    cached = tmp_path / "xdg" / "genzoo" / "mnist"
    assert len(_files(cached)) == 4
    listed = run_genzoo("datasets", "--json", env=env)
    assert '"status": "cached"' in listed.stdout
    second = run_genzoo("train", "vae", "--data", "mnist", "--preset", "tiny", "--steps", "5",
                        "--out", str(tmp_path / "run2"), env=env)
    assert second.returncode == 0 and "downloading" not in second.stderr


def test_offline_fails_fast_with_a_useful_message(tmp_path):
    env = {"GENZOO_DATA_DIR": None, "XDG_CACHE_HOME": str(tmp_path / "empty"),
           "GENZOO_MIRROR": "http://127.0.0.1:9"}  # nothing listens on the discard port
    start = time.monotonic()
    result = run_genzoo("train", "vae", "--data", "mnist", "--out", str(tmp_path / "r"), env=env)
    assert time.monotonic() - start < 15
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "dataset 'mnist' is not available offline" in result.stderr
    assert "GENZOO_DATA_DIR" in result.stderr and "digits, python-docs" in result.stderr


def test_a_corrupt_file_in_the_data_dir_is_named(tmp_path, shared_data):
    shutil.copytree(shared_data / "mnist", tmp_path / "mnist")
    path = tmp_path / LABELS
    data = bytearray(path.read_bytes())
    data[50] ^= 1
    path.write_bytes(bytes(data))
    result = run_genzoo("train", "vae", "--data", "mnist", "--out", str(tmp_path / "r"),
                        env={"GENZOO_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert f"{path} is corrupt: sha256" in result.stderr


def test_download_settings_and_cache_problems_are_one_line_errors(tmp_path, monkeypatch):
    from genzoo.errors import ConfigError

    known = dl.KNOWN_FILES[LABELS]
    for bad in ("abc", "-1", "0", "nan", "inf"):
        monkeypatch.setenv("GENZOO_DOWNLOAD_TIMEOUT", bad)
        with pytest.raises(ConfigError, match=f"GENZOO_DOWNLOAD_TIMEOUT must be a number of "
                                              f"seconds above 0, not '{bad}'"):
            dl.download(known, tmp_path / "cache")
    monkeypatch.setenv("GENZOO_DOWNLOAD_TIMEOUT", "2.5")
    assert dl.timeout() == 2.5
    afile = tmp_path / "afile"  # XDG_CACHE_HOME pointing at a file
    afile.write_text("x")
    with pytest.raises(DataError, match=f"cannot create the cache folder {afile}/mnist: Not a "
                                        "directory; set XDG_CACHE_HOME to a writable folder"):
        dl.download(known, afile)
    folder = tmp_path / "labels"  # an unreadable file: here, a folder where it should be
    folder.mkdir()
    size = folder.stat().st_size
    with pytest.raises(DataError, match=f"cannot read {folder}: Is a directory"):
        dl.verify_file(folder, dl.RemoteFile(LABELS, size, "0" * 64))


def test_a_killed_downloads_temporary_file_is_removed_by_the_next(www, tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("GENZOO_MIRROR", www)
    dest = tmp_path / "cache" / LABELS
    dest.parent.mkdir(parents=True)
    dead = dest.with_name(f".{dest.name}.part-999999999")  # no such process
    live = dest.with_name(f".{dest.name}.part-{os.getppid()}")  # a download in progress
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    dl.download(dl.KNOWN_FILES[LABELS], tmp_path / "cache")
    assert dest.is_file() and not dead.exists() and live.exists()


def test_a_partial_data_dir_and_a_bad_mirror_are_told_apart(www, tmp_path, shared_data):
    data_dir = tmp_path / "data"
    shutil.copytree(shared_data / "mnist", data_dir / "mnist")
    (data_dir / "mnist" / "train-labels-idx1-ubyte.gz").unlink()
    env = {"GENZOO_DATA_DIR": str(data_dir), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "GENZOO_MIRROR": www + "/corrupt"}  # answers, with a corrupt file or a 404
    result = run_genzoo("train", "vae", "--data", "mnist", "--out", str(tmp_path / "r"), env=env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "its mnist/ lacks train-labels-idx1-ubyte.gz" in result.stderr
    assert "dataset 'mnist' could not be downloaded" in result.stderr  # not "offline"
    assert "HTTP 404" in result.stderr


def test_a_mirror_that_is_not_a_url_is_a_config_error(monkeypatch) -> None:
    from genzoo.errors import ConfigError

    monkeypatch.setenv("GENZOO_MIRROR", "notaurl")
    with pytest.raises(ConfigError, match="GENZOO_MIRROR must be a URL starting with http://"):
        dl.urls_for("mnist/t10k-labels-idx1-ubyte.gz")
