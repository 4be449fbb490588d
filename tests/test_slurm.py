"""The SLURM profile on a real single-node SLURM: submission, GPU mapping, retries."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from slurm_cluster import ensure_installed, single_node_cluster
from workflow_support import ROOT, TINY_DEFAULT, copy_workflow, write_config

pytestmark = pytest.mark.slow
TINY = TINY_DEFAULT


SHIPPED_PROFILE = ROOT / "profiles" / "slurm"
# The test cluster's own settings, nothing else: it has no accounting (squeue status, no -A), and
# a short first status check keeps the test quick. Everything else comes from the shipped profile.
CLUSTER_OVERRIDES = ["--slurm-status-command", "squeue", "--slurm-no-account", "--slurm-init-seconds-before-status-checks", "2"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = ensure_installed()
    if reason:
        pytest.skip(reason)
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs its daemons as root")
    with single_node_cluster(tmp_path_factory.mktemp("slurm")) as partition:
        yield partition


def test_the_shipped_profile_runs_a_training_target_on_slurm_with_gpus_and_retries_a_failed_job(cluster, tmp_path):
    work = copy_workflow(tmp_path / "wf")
    config = write_config(work / "tiny.yaml", **TINY)
    marker = tmp_path / "failed-once"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "TOPKSHAPE_FAIL_ONCE": f"train:{marker}"}
    target = "results/default/train/S1/topk/seed0/summary.json"
    run = subprocess.run([str(Path(sys.executable).parent / "snakemake"), target, "results/default/environment.txt", "--profile", str(SHIPPED_PROFILE), *CLUSTER_OVERRIDES,
                          "--configfile", str(config), "--verbose"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL, check=False)
    output = run.stdout + run.stderr
    job_ids = re.findall(r"SLURM jobid (\d+)", output)
    print("SLURM job ids:", job_ids)
    assert run.returncode == 0, output[-4000:]
    assert (work / target).is_file() and marker.is_file()
    # subset + stylized + train, and the train job once more after its injected failure.
    assert len(job_ids) >= 4, output[-3000:]
    log = (work / "logs" / "default" / "train" / "S1_topk_seed0.log").read_text()
    assert "injected failure" not in log  # the log of the retry replaced the failed one
    # The rule's gpu=1 reached sbatch as a GPU request, with the shipped per-rule runtime and memory.
    train = yaml.safe_load((SHIPPED_PROFILE / "config.yaml").read_text())["set-resources"]["train"]
    train_calls = [line for line in output.splitlines() if "sbatch" in line and "rule_train" in line]
    assert train_calls, output[-3000:]
    assert all("--gpus=1" in call for call in train_calls), train_calls
    assert all(f"-t {train['runtime']}" in call and f"--mem {train['mem_mb']}" in call for call in train_calls), train_calls
    assert not any(" -A " in call for call in train_calls)
    # Under SLURM the scheduler has chosen the GPU: no local slot is taken.
    assert "GPU slot" not in log
    if "gpus=" in (ROOT / "workflow_scripts" / "train_classifier.py").read_text():
        assert "GPU assigned by SLURM (CUDA_VISIBLE_DEVICES=" in log, log
    slurm_logs = list((work / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert any("rule_train" in p.as_posix() for p in slurm_logs), slurm_logs
    # The environment record is a local rule: written on the submitting host, never an sbatch job.
    assert (work / "results" / "default" / "environment.txt").is_file()
    if LOCAL_RULES.issubset(_declared_localrules()):
        assert not any("rule_environment" in p.as_posix() for p in slurm_logs), slurm_logs


# Rules that must not become cluster jobs: aggregates, tables, reports, figures, the environment
# record (seconds each, and a queue wait each on a cluster) and downloads (compute nodes are often offline).
LOCAL_RULES = {"all", "data", "train_all", "gan_all", "environment", "table1", "table2", "shape_bias_report", "atlas_report", "mask_dynamics",
               "gan_mask_dynamics", "builtin_styles", "adain_weights", "cue_conflict_images", "human_decisions", "paper_data",
               "ood_dataset", "ood_humans", "ood_report"}
GPU_RULES = {"train", "stylized", "cue_conflict_eval", "cue_conflict_tie_spread", "atlas_eval", "texture_synthesis", "gan_train", "gan_eval",
             "ood_eval"}


def _declared_localrules() -> set[str]:
    text = (ROOT / "Snakefile").read_text() + "".join(p.read_text() for p in sorted((ROOT / "rules").glob("*.smk")))
    names: set[str] = set()
    for match in re.finditer(r"^localrules:\s*((?:[\w ,]|\\\n|\n[ \t]+)+)", text, re.MULTILINE):
        names.update(n for n in re.split(r"[\s,\\]+", match.group(1)) if n)
    return names


def test_light_rules_run_locally_and_gpu_rules_are_submitted():
    declared = _declared_localrules()
    if not declared:
        pytest.skip("the Snakefile declares no localrules yet")
    assert LOCAL_RULES <= declared, sorted(LOCAL_RULES - declared)
    assert not GPU_RULES & declared, sorted(GPU_RULES & declared)
