"""`dvc repro` regenerates Tables 1 and 2 from a clean checkout, and a second run does nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workflow_support import ROOT, TINY_DEFAULT, copy_workflow, write_config

pytestmark = pytest.mark.slow

TINY = dict(
    TINY_DEFAULT,
    data__fewshot_images=10,
    gan__iterations=2,
    gan__checkpoint_every=2,
    gan__eval={"samples": 10, "kid_subset_size": 5, "feature_extractor": "classifier", "classifier_subset": "S1"},
)


def _run(cmd, cwd, env):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)


def test_dvc_repro_builds_tables_1_and_2_and_a_second_repro_does_nothing(tmp_path):
    work = copy_workflow(tmp_path / "repo")
    shutil.copy2(ROOT / "dvc.yaml", work / "dvc.yaml")
    shutil.copytree(ROOT / "src" / "topkshape", work / "src" / "topkshape", ignore=shutil.ignore_patterns("__pycache__"))
    write_config(work / "config.yaml", **TINY)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    dvc = str(Path(sys.executable).parent / "dvc")
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "t@example.org"], ["git", "config", "user.name", "t"], [dvc, "init", "-q"]):
        assert _run(cmd, work, env).returncode == 0
    first = _run([dvc, "repro"], work, env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    table = (work / "results" / "default" / "tables" / "table1.md").read_text()
    assert "ResNet-18 w. Top-K during training" in table and "(paper)" in table
    table2 = (work / "results" / "default" / "tables" / "table2.md").read_text()
    assert "FastGAN w. Top-K (ours)" in table2 and (work / "results" / "default" / "figures" / "fewshot_samples.png").is_file()
    assert (work / "dvc.lock").is_file()
    second = _run([dvc, "repro"], work, env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "didn't change, skipping" in second.stdout
    assert "Running stage" not in second.stdout
    status = _run([dvc, "status"], work, env)
    assert "up to date" in status.stdout
