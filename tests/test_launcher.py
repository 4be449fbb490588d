"""`python -m topkshape` checks Snakemake's command line before Snakemake parses it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from workflow_support import copy_workflow


def _launch(cwd, *args):
    return subprocess.run([sys.executable, "-m", "topkshape", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_missing_configfile_is_one_line_without_traceback(tmp_path):
    work = copy_workflow(tmp_path / "w")
    result = _launch(work, "-n", "all", "--cores", "1", "--configfile", "missing.yaml")
    assert result.returncode == 1
    assert result.stderr.strip() == "topkshape: --configfile missing.yaml: config file not found"


@pytest.mark.slow
def test_dotted_config_override_reaches_the_workflow_as_a_nested_value(tmp_path):
    work = copy_workflow(tmp_path / "w")
    bad = _launch(work, "-n", "all", "--cores", "1", "--config", "train.epochs=0")
    # epochs=0 reaches validation as train: {epochs: 0} and is rejected there, naming the key.
    assert bad.returncode != 0 and "train.epochs" in bad.stderr and "Traceback" not in bad.stderr
    good = _launch(work, "-n", "all", "--cores", "1", "--config", "train.epochs=2")
    assert good.returncode == 0, good.stderr[-2000:]
