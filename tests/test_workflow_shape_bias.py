"""The shape-bias stage of the DAG: the paper plan and one real job on the shared sample images."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workflow_support import copy_workflow, snakemake, write_config

pytestmark = pytest.mark.slow
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "shared" / "cue-conflict-sample"


def _fake_root(tmp_path):
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    return tmp_path / "imagenet"


def test_paper_config_plans_the_k_sweep_with_one_gpu_each(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    plan = snakemake(work, "shape_bias_report", "-n", "--cores", "8", "--configfile", "config/paper.yaml",
                     "--config", f"imagenet_root={_fake_root(tmp_path)}")
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = {line.split()[0]: int(line.split()[1]) for line in plan.stdout.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    # 2 models x (the plain model + 6 fractions x 2 modes).
    assert counts["cue_conflict_eval"] == 2 * (1 + 6 * 2)
    assert counts["cue_conflict_images"] == 1 and counts["human_decisions"] == 1
    blocks = plan.stdout.split("rule cue_conflict_eval:")[1:]
    assert len(blocks) == 26 and all("gpu=1" in block.split("\n\n")[0] for block in blocks)


@pytest.mark.skipif(not SAMPLE_DIR.is_dir(), reason=f"shared cue-conflict sample not found at {SAMPLE_DIR}")
def test_one_paper_job_runs_end_to_end_on_the_sample_images_with_random_weights(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    config = write_config(
        work / "sb.yaml", base="config/paper.yaml", imagenet_root=str(_fake_root(tmp_path)),
        shape_bias__weights=None, shape_bias__cue_conflict={"source": "folder", "path": str(SAMPLE_DIR)},
        shape_bias__humans={"source": "none"},
    )
    target = "results/paper/shape_bias/raw/cue-conflict_alexnet-topk10_session-1.csv"
    run = snakemake(work, target, "--cores", "2", "--configfile", str(config))
    assert run.returncode == 0, run.stderr[-3000:]
    rows = pd.read_csv(work / target)
    assert len(rows) == 32 and set(rows["subj"]) == {"alexnet-topk10"}
    assert (work / "logs" / "paper" / "shape_bias" / "alexnet-topk10.log").is_file()
