"""The SLURM profile on a real single-node SLURM: submission, GPU mapping, retries."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from slurm_cluster import ensure_installed, single_node_cluster
from workflow_support import ROOT, TINY_DEFAULT, copy_workflow, write_config

pytestmark = pytest.mark.slow
TINY = TINY_DEFAULT


def _test_profile(work: Path) -> Path:
    """The project's profile with the test cluster's partition, no account and squeue status checks."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"].update(slurm_partition="test", runtime=30, mem_mb=2000, cpus_per_task=1)
    profile["default-resources"].pop("slurm_account")
    for rule in profile["set-resources"].values():
        rule.update(mem_mb=2000, cpus_per_task=1)
    profile.update({"slurm-no-account": True, "slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 2,
                    "latency-wait": 5, "retries": 1})
    folder = work / "profiles" / "slurm-test"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = ensure_installed()
    if reason:
        pytest.skip(reason)
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs its daemons as root")
    with single_node_cluster(tmp_path_factory.mktemp("slurm")) as partition:
        yield partition


def test_training_target_runs_through_slurm_with_gpus_and_a_failed_job_is_retried(cluster, tmp_path):
    work = copy_workflow(tmp_path / "wf")
    profile = _test_profile(work)
    config = write_config(work / "tiny.yaml", **TINY)
    marker = tmp_path / "failed-once"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TOPKSHAPE_FAIL_ONCE": f"train:{marker}"}
    target = "results/default/train/S1/topk/seed0/summary.json"
    run = subprocess.run([str(Path(sys.executable).parent / "snakemake"), target, "--profile", str(profile), "--configfile", str(config), "--verbose"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=900)
    output = run.stdout + run.stderr
    job_ids = re.findall(r"SLURM jobid (\d+)", output)
    print("SLURM job ids:", job_ids)
    assert run.returncode == 0, output[-4000:]
    assert (work / target).is_file() and marker.is_file()
    # subset + stylized + train, and the train job once more after its injected failure.
    assert len(job_ids) >= 4, output[-3000:]
    log = (work / "logs" / "default" / "train" / "S1_topk_seed0.log").read_text()
    assert "injected failure" not in log  # the log of the retry replaced the failed one
    # The rule's gpu=1 reached sbatch as a GPU request (two fake GPUs on the test node).
    assert "--gpus=1" in output, output[-3000:]
    slurm_logs = list((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert any("rule_train" in p.as_posix() for p in slurm_logs), slurm_logs
