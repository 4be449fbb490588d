"""Downloads are verified or absent; served from a local HTTP server, never the internet."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import pytest

from topkshape.download import as_url, download_file, sha256_of, verify_sha256
from topkshape.errors import ChecksumError, ConfigError, InputDataError
from topkshape.smoke.server import serving
from conftest import needs_shared

PAYLOAD = b"weights " * 5000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "model.pth").write_bytes(PAYLOAD)
    with serving(served, 0) as base:
        yield base


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


def test_require_pinned_refuses_an_unpinned_download_before_fetching(server, tmp_path):
    dest = tmp_path / "model.pth"
    with pytest.raises(ConfigError) as info:
        download_file(f"{server}/model.pth", dest, None, progress=False, require_pinned=True,
                      pin_key="stylize.adain.encoder_sha256")
    message = str(info.value)
    assert "\n" not in message and "model.pth" in message and "stylize.adain.encoder_sha256" in message
    assert not dest.exists() and leftovers(tmp_path) == ["served"]


def test_require_pinned_lets_a_pinned_download_through(server, tmp_path):
    dest = tmp_path / "model.pth"
    download_file(f"{server}/model.pth", dest, PAYLOAD_SHA, progress=False, require_pinned=True)
    assert dest.read_bytes() == PAYLOAD


def test_a_local_folder_or_file_url_works_as_a_download_location(tmp_path):
    source = tmp_path / "mirror" / "model.pth"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    assert as_url(tmp_path / "mirror") == (tmp_path / "mirror").as_uri()
    assert as_url("https://example.org/x") == "https://example.org/x"
    dest = tmp_path / "out" / "model.pth"
    download_file(f"{as_url(tmp_path / 'mirror')}/model.pth", dest, PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


HUMANS = Path(__file__).resolve().parents[2] / "shared" / "model-vs-human" / "raw-data" / "cue-conflict"


@needs_shared(HUMANS, "../shared/model-vs-human")
def test_human_decisions_are_checked_against_the_shipped_pins(tmp_path):
    from topkshape.shape_bias.fetch import HUMAN_FILES, fetch_human_decisions

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in HUMAN_FILES:
        shutil.copyfile(HUMANS / name, mirror / name)
    paths = fetch_human_decisions(str(mirror), tmp_path / "humans", require_pinned=True)
    assert [p.read_bytes() for p in paths] == [(HUMANS / n).read_bytes() for n in HUMAN_FILES]
    with open(mirror / HUMAN_FILES[3], "ab") as f:
        f.write(b"x")
    with pytest.raises(ChecksumError, match=HUMAN_FILES[3]):
        fetch_human_decisions(str(mirror), tmp_path / "humans2")
    assert not (tmp_path / "humans2").exists()


def test_a_hash_prefix_pins_a_download_as_torch_hub_does(server, tmp_path, caplog):
    """torchvision's and torch-fidelity's files carry a SHA-256 prefix in their names (vgg16-397923af.pth)."""
    dest = tmp_path / "out" / "model.pth"
    with caplog.at_level(logging.WARNING):
        download_file(f"{server}/model.pth", dest, None, progress=False, require_pinned=True, sha256_prefix=PAYLOAD_SHA[:8])
    assert dest.read_bytes() == PAYLOAD and "unpinned" not in caplog.text
    other = tmp_path / "other" / "model.pth"
    with pytest.raises(ChecksumError, match=f"does not start with {'0' * 8}"):
        download_file(f"{server}/model.pth", other, None, progress=False, sha256_prefix="0" * 8)
    assert not other.parent.exists() or leftovers(other.parent) == []
    with pytest.raises(ConfigError, match="sha256_prefix"):
        download_file(f"{server}/model.pth", other, None, progress=False, sha256_prefix="xyz")
