"""Packaging: the public API, the version, and the conda file agreeing with pyproject."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import yaml

import topkshape

ROOT = Path(__file__).resolve().parents[1]


def test_public_names_and_version_are_importable_from_the_root():
    from topkshape import TopK, TopKMeanReplace, insert_topk, topk_mask  # noqa: F401

    out = subprocess.run(
        [sys.executable, "-c", "import topkshape; print(topkshape.__version__)"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == topkshape.__version__ == metadata.version("topkshape")


def _name(requirement: str) -> str:
    for sep in "<>=!~[ ;":
        requirement = requirement.split(sep)[0]
    return requirement.strip().lower().replace("_", "-")


def test_environment_yml_lists_exactly_the_pyproject_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r.replace(" ", "") for r in pip_section if r != "-e ."}
    assert listed == wanted


def test_lock_pins_every_runtime_requirement_and_the_ci_torch():
    lock = {
        _name(line): line.split("==")[1].strip()
        for line in (ROOT / "requirements-lock.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    missing = {_name(r) for r in project["dependencies"]} - set(lock)
    assert not missing
    assert lock["torch"] == "2.14.1" and lock["torchvision"] == "0.29.1"


def test_the_testing_docs_map_every_module_to_the_test_files_that_import_it():
    """docs/testing.md is what tools/test_map.py writes now: a new module or a moved import shows up there."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("test_map", ROOT / "tools" / "test_map.py")
    test_map = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_map)
    text = test_map.render()
    assert (ROOT / "docs" / "testing.md").read_text() == text, "run python tools/test_map.py"
    assert all(f"| `{name}` |" in text for name in test_map.modules())
    assert "| `topkshape.models.surgery` | " in text and "`test_surgery_insert.py`" in text.split("| `topkshape.models.surgery` |")[1].split("\n")[0]
