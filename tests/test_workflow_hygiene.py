"""Static guarantees the workflow relies on: scripts see only declared params, loads are weights-only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "workflow_scripts").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_workflow_script_reads_no_global_config(script):
    # Snakemake tracks only declared params: a value read from snakemake.config would not rerun the job.
    assert not re.search(r"\b(snakemake|sm)\.config\b", script.read_text()), script.name


def test_no_library_code_unpickles_arbitrary_objects():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*.py") if "weights_only=False" in p.read_text()]
    assert offenders == []


def test_every_torch_load_in_the_library_goes_through_the_one_loader():
    calls = [str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*.py")
             if "torch.load(" in p.read_text() and p.name != "checkpoint.py"]
    assert calls == []
