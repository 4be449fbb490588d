"""Downloads are verified or absent; served from a local HTTP server, never the internet."""

from __future__ import annotations

import functools
import hashlib
import http.server
import logging
import threading

import pytest

from topkshape.download import download_file, sha256_of, verify_sha256
from topkshape.errors import ChecksumError, InputDataError

PAYLOAD = b"weights " * 5000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - keeps pytest output clean
        pass


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "model.pth").write_bytes(PAYLOAD)
    handler = functools.partial(_QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_download_with_matching_hash_writes_the_file(server, tmp_path):
    dest = tmp_path / "out" / "model.pth"
    got = download_file(f"{server}/model.pth", dest, PAYLOAD_SHA.upper(), progress=False)
    assert got == dest
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(dest.parent) == ["model.pth"]


def test_download_with_wrong_hash_raises_and_leaves_no_file(server, tmp_path):
    dest = tmp_path / "out" / "model.pth"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        download_file(f"{server}/model.pth", dest, wrong, progress=False)
    message = str(info.value)
    assert "\n" not in message
    assert "model.pth" in message and wrong in message and PAYLOAD_SHA in message
    assert not dest.exists()
    assert leftovers(dest.parent) == []


def test_download_of_missing_url_raises_input_data_error(server, tmp_path):
    dest = tmp_path / "missing.pth"
    url = f"{server}/missing.pth"
    with pytest.raises(InputDataError) as info:
        download_file(url, dest, PAYLOAD_SHA, progress=False)
    assert not isinstance(info.value, ChecksumError)
    assert url in str(info.value) and "404" in str(info.value)
    assert leftovers(tmp_path) == ["served"]


def test_unreachable_host_raises_input_data_error(tmp_path):
    # Port 9 on localhost: connection refused at once, no network needed.
    with pytest.raises(InputDataError, match="127.0.0.1:9"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", None, timeout=5, progress=False)


def test_download_without_pin_warns_with_actual_hash(server, tmp_path, caplog):
    dest = tmp_path / "model.pth"
    with caplog.at_level(logging.WARNING, logger="topkshape.download"):
        download_file(f"{server}/model.pth", dest, None, progress=True)
    assert dest.read_bytes() == PAYLOAD
    assert PAYLOAD_SHA in caplog.text


def test_verify_sha256_names_the_path(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(PAYLOAD)
    assert sha256_of(path) == PAYLOAD_SHA
    verify_sha256(path, PAYLOAD_SHA)
    with pytest.raises(ChecksumError, match="file.bin"):
        verify_sha256(path, "f" * 64)
    with pytest.raises(InputDataError, match="absent.bin"):
        sha256_of(tmp_path / "absent.bin")
