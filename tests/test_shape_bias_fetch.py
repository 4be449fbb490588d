"""Fetching the benchmark's files: archives and observer files served from a local HTTP server, never the internet."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import re
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from topkshape.errors import ChecksumError, ConfigError, InputDataError
from topkshape.shape_bias.fetch import (
    HUMAN_FILES,
    copy_image_folder,
    fetch_cue_conflict,
    fetch_human_decisions,
    human_decision_hashes,
)

# An archive as the stimuli come: nested one folder deep, a licence beside the category folders.
MEMBERS = {
    "stimuli/LICENSE.txt": b"licence",
    "stimuli/cue-conflict/cat/cat1-dog1.png": b"cat png",
    "stimuli/cue-conflict/dog/dog1-cat1.png": b"dog png",
    "stimuli/cue-conflict/dog/dog2-cat2.png": b"dog png 2",
    "stimuli/cue-conflict/notes.txt": b"not a category",
}


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in MEMBERS.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for name, data in MEMBERS.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requested: list[str] = []

    def log_message(self, format, *args):  # noqa: A002 - keeps pytest output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server's name
        self.requested.append(self.requestline.split()[1])  # as sent: the handler itself folds a leading '//'
        super().do_GET()


@pytest.fixture
def served(tmp_path):
    """(folder the server serves, its base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


EXPECTED_TREE = {"cat/cat1-dog1.png": b"cat png", "dog/dog1-cat1.png": b"dog png", "dog/dog2-cat2.png": b"dog png 2"}


@pytest.mark.parametrize("name,make", [("stimuli.zip", _zip), ("stimuli.tar.gz", _tar)])
def test_fetched_archive_unpacks_only_the_category_folders_of_its_nested_image_root(served, tmp_path, name, make):
    folder, url = served
    data = make()
    (folder / name).write_bytes(data)
    out = fetch_cue_conflict(f"{url}/{name}", _sha(data), tmp_path / "cue-conflict")
    assert out == tmp_path / "cue-conflict"
    assert _tree(out) == EXPECTED_TREE


def test_fetched_archive_with_a_wrong_hash_leaves_no_folder(served, tmp_path):
    folder, url = served
    (folder / "stimuli.zip").write_bytes(_zip())
    with pytest.raises(ChecksumError):
        fetch_cue_conflict(f"{url}/stimuli.zip", "0" * 64, tmp_path / "cue-conflict")
    assert not (tmp_path / "cue-conflict").exists()


def test_a_file_that_is_no_archive_is_named_as_such(served, tmp_path):
    folder, url = served
    (folder / "stimuli.zip").write_bytes(b"plain text, not an archive")
    with pytest.raises(InputDataError) as exc:
        fetch_cue_conflict(f"{url}/stimuli.zip", None, tmp_path / "cue-conflict")
    assert str(exc.value) == f"{url}/stimuli.zip: neither a tar nor a zip archive"
    assert not (tmp_path / "cue-conflict").exists()


def test_an_unpinned_archive_is_refused_when_pins_are_required_naming_the_config_key(served, tmp_path):
    folder, url = served
    (folder / "stimuli.zip").write_bytes(_zip())
    with pytest.raises(ConfigError, match=re.escape("set shape_bias.cue_conflict.sha256 to its SHA-256")):
        fetch_cue_conflict(f"{url}/stimuli.zip", None, tmp_path / "cue-conflict", require_pinned=True)
    # Without the requirement the same archive is taken (its hash is only logged).
    assert _tree(fetch_cue_conflict(f"{url}/stimuli.zip", None, tmp_path / "cue-conflict")) == EXPECTED_TREE


def test_copy_image_folder_takes_a_folder_with_category_folders_as_it_is(tmp_path):
    source = tmp_path / "src"
    for relative, data in EXPECTED_TREE.items():
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_bytes(data)
    (source / "README.txt").write_text("not copied: a file beside the category folders")
    assert copy_image_folder(str(source), str(tmp_path / "out")) == tmp_path / "out"
    assert _tree(tmp_path / "out") == EXPECTED_TREE


def test_copy_image_folder_names_a_missing_folder_or_one_without_images(tmp_path):
    with pytest.raises(InputDataError) as exc:
        copy_image_folder(tmp_path / "missing", tmp_path / "out")
    assert str(exc.value) == f"cue-conflict folder not found: {tmp_path / 'missing'}"
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "cat" / "cat1.txt").write_text("no png")
    with pytest.raises(InputDataError) as exc:
        copy_image_folder(tmp_path / "empty", tmp_path / "out")
    assert str(exc.value) == f"no <category>/*.png images found in {tmp_path / 'empty'}"
    assert not (tmp_path / "out").exists()


def test_the_ten_observer_files_and_their_shipped_pins():
    assert len(HUMAN_FILES) == 10
    assert HUMAN_FILES[0] == "cue-conflict_subject-01_session_1.csv"
    assert HUMAN_FILES[9] == "cue-conflict_subject-10_session_1.csv"
    pins = human_decision_hashes()
    assert set(pins) == set(HUMAN_FILES)
    assert all(re.fullmatch("[0-9a-f]{64}", sha) for sha in pins.values())


def test_observer_files_are_downloaded_and_checked_against_the_given_pins(served, tmp_path):
    folder, url = served
    files = {"a.csv": b"first\n", "b.csv": b"second\n"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    pins = {name: _sha(data) for name, data in files.items()}
    # A trailing slash on the base URL is fine.
    _QuietHandler.requested.clear()
    paths = fetch_human_decisions(url + "/", tmp_path / "humans", list(files), hashes=pins, require_pinned=True)
    assert _QuietHandler.requested == ["/a.csv", "/b.csv"]  # no '//': strict servers answer 404 to it
    assert paths == [tmp_path / "humans" / "a.csv", tmp_path / "humans" / "b.csv"]
    assert [p.read_bytes() for p in paths] == list(files.values())
    # Only slashes come off the end of the base URL: a folder ending in X stays itself.
    (folder / "mirrorX").mkdir()
    (folder / "mirrorX" / "a.csv").write_bytes(files["a.csv"])
    assert fetch_human_decisions(f"{url}/mirrorX/", tmp_path / "humansX", ["a.csv"], hashes=pins)[0].read_bytes() == files["a.csv"]
    with pytest.raises(ChecksumError, match="b.csv"):
        fetch_human_decisions(url, tmp_path / "humans2", list(files), hashes={**pins, "b.csv": "0" * 64})
    assert not (tmp_path / "humans2").exists()


def test_observer_files_are_checked_against_the_shipped_pins_by_default(served, tmp_path):
    folder, url = served
    (folder / HUMAN_FILES[0]).write_bytes(b"not the observer's file\n")
    with pytest.raises(ChecksumError, match=HUMAN_FILES[0]):
        fetch_human_decisions(url, tmp_path / "humans", HUMAN_FILES[:1])
    # A name without a shipped pin is refused when pins are required, naming the manifest.
    (folder / "extra.csv").write_bytes(b"x\n")
    with pytest.raises(ConfigError, match=re.escape("set human_decisions_sha256.json (extra.csv) to its SHA-256")):
        fetch_human_decisions(url, tmp_path / "humans", ["extra.csv"], require_pinned=True)
    assert fetch_human_decisions(url, tmp_path / "humans", ["extra.csv"]) == [tmp_path / "humans" / "extra.csv"]


def test_a_tar_member_that_would_land_outside_the_folder_is_refused(served, tmp_path):
    folder, url = served
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        for name, data in (("cat/cat1-dog1.png", b"png"), ("../escaped.png", b"outside")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (folder / "evil.tar").write_bytes(buffer.getvalue())
    with pytest.raises(tarfile.OutsideDestinationError):
        fetch_cue_conflict(f"{url}/evil.tar", None, tmp_path / "cue-conflict")
    assert not (tmp_path / "cue-conflict").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_observer_downloads_show_no_progress_bar_even_on_a_terminal(served, tmp_path, monkeypatch):
    folder, url = served
    (folder / "a.csv").write_bytes(b"first\n" * 1000)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    fetch_human_decisions(url, tmp_path / "humans", ["a.csv"])
    monkeypatch.undo()
    assert terminal.getvalue() == ""
