"""download.py's pieces with a fake opener and a fake progress bar: what is passed on (timeout, chunk size,
the bar's total and unit), every one-line error, the unpinned warning, and archive unpacking.

tests/test_download.py downloads from a local HTTP server (what a user sees); these pin down the rest, so
that a dropped timeout, a wrong chunk size or a changed message fails here.
"""

from __future__ import annotations

import hashlib
import http.client
import inspect
import io
import logging
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import pytest

from topkshape import download
from topkshape.download import as_url, download_file, sha256_of, unpack_archive
from topkshape.errors import ChecksumError, ConfigError, InputDataError

URL = "http://127.0.0.1:9/weights.pth"


class FakeResponse(io.BytesIO):
    """A response whose reads are recorded, with headers like urllib's."""

    def __init__(self, data: bytes, headers: dict[str, str] | None = None, fail_after: BaseException | None = None):
        super().__init__(data)
        self.headers = headers if headers is not None else {"Content-Length": str(len(data))}
        self.sizes: list[int | None] = []
        self.fail_after = fail_after

    def read(self, size=-1):
        self.sizes.append(size)
        if self.fail_after is not None and len(self.sizes) > 1:
            raise self.fail_after
        return super().read(size)


class FakeBar:
    """tqdm's place: keeps its keyword arguments and every update."""

    made: list["FakeBar"] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.updates: list[int] = []
        FakeBar.made.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        self.updates.append(n)


@pytest.fixture
def fake_net(monkeypatch):
    """Answers urlopen with the next queued response (or raises it) and records each call's timeout."""
    calls: list[tuple[str, object]] = []
    queue: list[object] = []

    def urlopen(url, timeout=None, **_):
        calls.append((url, timeout))
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    FakeBar.made = []
    monkeypatch.setattr(download.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(download, "tqdm", FakeBar)
    return calls, queue


def test_the_defaults_are_a_60_s_timeout_and_a_progress_bar():
    parameters = inspect.signature(download_file).parameters
    assert parameters["timeout"].default == 60 and parameters["progress"].default is True


def test_the_timeout_chunk_size_and_bar_are_passed_on(fake_net, tmp_path):
    calls, queue = fake_net
    data = b"x" * (download._CHUNK + 5)
    response = FakeResponse(data)
    queue.append(response)
    download_file(URL, tmp_path / "w.pth", hashlib.sha256(data).hexdigest(), timeout=7)
    assert calls == [(URL, 7)]
    assert response.sizes == [download._CHUNK, download._CHUNK, download._CHUNK] and download._CHUNK == 1 << 20
    (bar,) = FakeBar.made
    assert bar.kwargs == {"total": len(data), "unit": "B", "unit_scale": True, "desc": "w.pth", "disable": None, "leave": False}
    assert bar.updates == [download._CHUNK, 5]
    assert (tmp_path / "w.pth").read_bytes() == data


@pytest.mark.parametrize(("headers", "total"), [({}, None), ({"Content-Length": "abc"}, None), ({"Content-Length": ""}, None),
                                                ({"content-length": "3"}, None), ({"Content-Length": "3"}, 3)])
def test_the_bar_total_is_the_content_length_when_it_is_a_number(fake_net, tmp_path, headers, total):
    _, queue = fake_net
    queue.append(FakeResponse(b"abc", headers))
    download_file(URL, tmp_path / "f", hashlib.sha256(b"abc").hexdigest(), progress=False)
    assert FakeBar.made[0].kwargs["total"] == total and FakeBar.made[0].kwargs["disable"] is True


def test_a_response_without_headers_has_no_total(fake_net, tmp_path):
    _, queue = fake_net
    response = FakeResponse(b"abc")
    del response.headers
    queue.append(response)
    download_file(URL, tmp_path / "f", hashlib.sha256(b"abc").hexdigest())
    assert FakeBar.made[0].kwargs["total"] is None


@pytest.mark.parametrize(("error", "message"), [
    (urllib.error.HTTPError(URL, 404, "Not Found", {}, None), f"cannot download {URL}: HTTP 404 Not Found"),
    (urllib.error.URLError("refused"), f"cannot download {URL}: refused"),
    (TimeoutError(), f"cannot download {URL}: no answer within 5 s"),
    (ValueError("unknown url type"), f"cannot download {URL}: unknown url type"),
    (http.client.BadStatusLine("junk"), f"cannot download {URL}: junk"),
])
def test_each_failure_to_open_is_one_line_naming_the_url(fake_net, tmp_path, error, message):
    _, queue = fake_net
    queue.append(error)
    with pytest.raises(InputDataError) as caught:
        download_file(URL, tmp_path / "f", None, timeout=5)
    assert str(caught.value) == message
    assert not (tmp_path / "f").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("error", "message"), [
    (TimeoutError(), f"cannot download {URL}: stalled for more than 5 s"),
    (http.client.IncompleteRead(b"ab", 3), f"cannot download {URL}: connection broke (IncompleteRead(2 bytes read, 3 more expected))"),
    (ConnectionResetError("reset"), f"cannot download {URL}: connection broke (ConnectionResetError('reset'))"),
])
def test_a_read_that_fails_midway_is_one_line_and_leaves_nothing(fake_net, tmp_path, error, message):
    _, queue = fake_net
    queue.append(FakeResponse(b"a" * (download._CHUNK + 1), fail_after=error))
    with pytest.raises(InputDataError) as caught:
        download_file(URL, tmp_path / "f", None, timeout=5)
    assert str(caught.value) == message
    assert list(tmp_path.iterdir()) == []


def test_the_unpinned_warning_names_url_file_and_hash(fake_net, tmp_path, caplog):
    _, queue = fake_net
    queue.append(FakeResponse(b"abc"))
    with caplog.at_level(logging.WARNING, logger="topkshape.download"):
        download_file(URL, tmp_path / "f", None)
    assert caplog.messages == [f"unpinned download: no SHA-256 pinned for {URL}; downloaded {tmp_path / 'f'} has sha256 "
                               f"{hashlib.sha256(b'abc').hexdigest()}"]


def test_require_pinned_names_the_key_or_asks_for_a_pin(tmp_path):
    with pytest.raises(ConfigError) as caught:
        download_file(URL, tmp_path / "f", None, require_pinned=True)
    assert str(caught.value) == (f"refusing to download {URL} without a pinned SHA-256 (downloads.require_pinned is true): "
                                 "pin its SHA-256, or set downloads.require_pinned: false")
    with pytest.raises(ConfigError, match=r": set adain\.sha256\.vgg to its SHA-256, or set"):
        download_file(URL, tmp_path / "f", None, require_pinned=True, pin_key="adain.sha256.vgg")


def test_a_malformed_hash_is_one_line_quoting_it(tmp_path):
    with pytest.raises(ConfigError) as caught:
        download_file(URL, tmp_path / "f", "abc")
    assert str(caught.value) == "sha256 must be 64 hexadecimal characters, got 'abc'"


def test_an_unreadable_file_is_named_with_the_reason(tmp_path):
    with pytest.raises(InputDataError) as caught:
        sha256_of(tmp_path / "absent")
    assert str(caught.value) == f"cannot read {tmp_path / 'absent'}: No such file or directory"


def test_urls_with_a_scheme_are_kept_and_paths_become_file_urls(tmp_path):
    for url in ("http://a/b", "https://a/b", "file:///srv/mirror", "ftp://a/b"):
        assert as_url(url) == url
    assert as_url(tmp_path / "mirror") == (tmp_path / "mirror").resolve().as_uri()


def _archive_members(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_zip_and_tar_archives_unpack_into_the_destination(tmp_path):
    members = {"weights/a.pth": b"first", "b.txt": b"second"}
    with zipfile.ZipFile(tmp_path / "set.zip", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with tarfile.open(tmp_path / "set.tar.gz", "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    for archive in ("set.zip", "set.tar.gz"):
        unpack_archive(tmp_path / archive, tmp_path / archive.replace(".", "_"), "http://x/" + archive)
        assert _archive_members(tmp_path / archive.replace(".", "_")) == members


def test_a_tar_member_that_would_leave_the_destination_is_refused(tmp_path):
    with tarfile.open(tmp_path / "evil.tar", "w") as tf:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(tarfile.OutsideDestinationError):
        unpack_archive(tmp_path / "evil.tar", tmp_path / "dest", "http://x/evil.tar")
    assert not (tmp_path / "outside.txt").exists()


def test_neither_tar_nor_zip_is_one_line_naming_the_url(tmp_path):
    (tmp_path / "page.html").write_text("<html>not an archive</html>")
    with pytest.raises(InputDataError) as caught:
        unpack_archive(tmp_path / "page.html", tmp_path / "dest", "http://x/set.tar")
    assert str(caught.value) == "http://x/set.tar: neither a tar nor a zip archive"


def test_a_wrong_hash_prefix_is_refused_and_a_right_one_kept(fake_net, tmp_path):
    _, queue = fake_net
    digest = hashlib.sha256(b"abc").hexdigest()
    queue.extend([FakeResponse(b"abc"), FakeResponse(b"abc")])
    with pytest.raises(ChecksumError, match=r"which does not start with 000000, the prefix its name pins$"):
        download_file(URL, tmp_path / "f", None, sha256_prefix="000000")
    assert download_file(URL, tmp_path / "f", None, sha256_prefix=digest[:8]).read_bytes() == b"abc"
