"""The paper's published data: every file pinned, fetched over HTTP (or from a folder), verified or absent.

The files are served from 127.0.0.1 out of ../shared/paper-data, laid out under the paper
repository's own paths, exactly as raw.githubusercontent.com serves them at the pinned commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from topkshape.errors import ChecksumError, InputDataError
from topkshape.paper_data import (
    COMMIT,
    fetch_paper_data,
    fetch_paper_part,
    load_manifest,
    part_files,
)
from topkshape.smoke.server import serving
from conftest import needs_shared

SHARED = Path(__file__).resolve().parents[2] / "shared" / "paper-data"
needs_paper_data = needs_shared(SHARED, "../shared/paper-data")

# The paper repository's folders and the shared copy of each (../shared/paper-data/README.md).
REPO_FOLDERS = {
    "cnns-train-top-k/style_target": "style_target",
    "few-shot-img-syn/data": "fewshot",
    "cnns-inference-top-k/model-vs-human_topK/datasets/cue-conflict": "cue-conflict",
}
STYLE_NAMES = {
    "design-space-paper-textured-background_53876-42312.jpg",
    "mondrian.jpg",
    "texture-photography-wood-bark.jpg",
}


def repository_tree(root: Path, copy: tuple[str, ...] = ()) -> Path:
    """The shared copies under the repository's paths: links, or copies for the folders in ``copy``."""
    for there, here in REPO_FOLDERS.items():
        target = root / there
        target.parent.mkdir(parents=True, exist_ok=True)
        if here in copy:
            shutil.copytree(SHARED / here, target)
        else:
            target.symlink_to(SHARED / here, target_is_directory=True)
    return root


@pytest.fixture
def serve():
    """Start an HTTP server on 127.0.0.1 (port 0) for a folder; yields a function folder -> base URL."""
    with contextlib.ExitStack() as servers:
        yield lambda folder: servers.enter_context(serving(folder, 0))


def test_manifest_pins_every_published_file():
    files = load_manifest()["files"]
    assert load_manifest()["commit"] == COMMIT == "2ab45deea83d5baa301e07efe2ba653a849cf852"
    assert all(re.fullmatch(r"[0-9a-f]{64}", sha) for sha in files.values())
    stimuli = [p for p in files if p.startswith("cnns-inference-top-k/model-vs-human_topK/datasets/cue-conflict/")]
    styles = [p for p in files if p.startswith("cnns-train-top-k/style_target/")]
    assert len(stimuli) == 1280
    assert len({p.split("/")[-2] for p in stimuli}) == 16
    assert {p.split("/")[-1] for p in styles} == STYLE_NAMES
    for name, count in {"jeep": 100, "fish": 100, "table": 100, "railway": 105}.items():
        assert len([p for p in files if p.startswith(f"few-shot-img-syn/data/{name}/")]) == count, name
    assert len(files) == 1280 + 3 + 100 + 100 + 100 + 105


@needs_paper_data
def test_manifest_hashes_are_those_of_the_published_bytes():
    for part, here in (("styles", SHARED / "style_target"), ("fewshot-railway", SHARED / "fewshot" / "railway")):
        items = part_files(part)
        assert sorted(i.rel_path for i in items) == sorted(p.name for p in here.iterdir())
        for item in items:
            assert hashlib.sha256((here / item.rel_path).read_bytes()).hexdigest() == item.sha256, item.repo_path


@needs_paper_data
def test_good_fetch_writes_each_part_byte_for_byte_with_a_manifest(tmp_path, serve):
    base = serve(repository_tree(tmp_path / "served"))
    out = tmp_path / "out"
    fetch_paper_data(out, base, parts=["styles", "fewshot-railway"], threads=4)
    assert sorted(p.name for p in out.iterdir()) == ["fewshot-railway", "styles"]
    styles = sorted(p.name for p in (out / "styles").iterdir())
    assert styles == sorted(STYLE_NAMES | {"manifest.json"})
    railway = sorted((out / "fewshot-railway").glob("*.jpg"))
    assert len(railway) == 105
    for path in railway:
        assert path.read_bytes() == (SHARED / "fewshot" / "railway" / path.name).read_bytes()
    record = json.loads((out / "styles" / "manifest.json").read_text())
    assert record["commit"] == COMMIT and sorted(record["files"]) == sorted(STYLE_NAMES)
    assert "127.0.0.1" not in json.dumps(record)  # a mirror delivers the same data: no URL in the identity


@needs_paper_data
def test_a_local_folder_serves_as_base_url(tmp_path):
    tree = repository_tree(tmp_path / "mirror")
    for base in (str(tree), tree.as_uri()):
        out = tmp_path / f"out-{base[:4]}"
        fetch_paper_part("styles", out, base)
        assert {p.name for p in out.glob("*.jpg")} == STYLE_NAMES


@needs_paper_data
def test_a_tampered_file_fails_in_one_line_naming_it_and_nothing_is_kept(tmp_path, serve):
    tree = repository_tree(tmp_path / "served", copy=("style_target",))
    victim = tree / "cnns-train-top-k/style_target/mondrian.jpg"
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    base = serve(tree)
    out = tmp_path / "out"
    with pytest.raises(ChecksumError) as info:
        fetch_paper_part("styles", out / "styles", base)
    message = str(info.value)
    assert "\n" not in message and "mondrian.jpg" in message
    assert not (out / "styles").exists()
    assert list(out.iterdir()) == []  # no temporary folder or partial file either


@needs_paper_data
def test_a_missing_file_fails_in_one_line_naming_it_and_nothing_is_kept(tmp_path, serve):
    tree = repository_tree(tmp_path / "served", copy=("style_target",))
    (tree / "cnns-train-top-k/style_target/texture-photography-wood-bark.jpg").unlink()
    base = serve(tree)
    out = tmp_path / "out"
    with pytest.raises(InputDataError) as info:
        fetch_paper_part("styles", out / "styles", base)
    message = str(info.value)
    assert not isinstance(info.value, ChecksumError)
    assert "\n" not in message and "texture-photography-wood-bark.jpg" in message and "404" in message
    assert list(out.iterdir()) == []


@needs_paper_data
def test_a_file_missing_from_a_local_mirror_fails_and_nothing_is_kept(tmp_path):
    tree = repository_tree(tmp_path / "mirror", copy=("style_target",))
    (tree / "cnns-train-top-k/style_target/mondrian.jpg").unlink()
    out = tmp_path / "out"
    with pytest.raises(InputDataError, match="mondrian.jpg"):
        fetch_paper_part("styles", out / "styles", str(tree))
    assert list(out.iterdir()) == []
