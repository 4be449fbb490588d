"""The shape-bias stage of the DAG: one sweep job per model, planned and run for real."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from workflow_support import TINY_DEFAULT, copy_workflow, snakemake, write_config
from conftest import needs_shared

pytestmark = pytest.mark.slow
SAMPLE_DIR = Path(__file__).resolve().parents[2] / "shared" / "cue-conflict-sample"
PAPER_TAGS = ["none"] + [f"{mode}{k}" for mode in ("topk", "non_topk") for k in (5, 10, 20, 30, 40, 50)]


def _fake_root(tmp_path):
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    return tmp_path / "imagenet"


def test_paper_config_plans_one_sweep_job_per_model_with_one_gpu_and_every_settings_csv(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    plan = snakemake(work, "shape_bias_report", "-n", "--cores", "8", "--configfile", "config/paper.yaml",
                     "--config", f"imagenet_root={_fake_root(tmp_path)}")
    assert plan.returncode == 0, plan.stderr[-3000:]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", plan.stdout, re.MULTILINE)}
    assert counts["cue_conflict_eval"] == 2  # alexnet and vgg16, each sweeping the plain model + 6 K x 2 modes
    # The paper's own 1,280 stimuli (rule paper_data), not the model-vs-human archive.
    assert counts["paper_data"] == 1 and "cue_conflict_images" not in counts and counts["human_decisions"] == 1
    assert "resources/paper-data/cue-conflict" in plan.stdout.split("rule cue_conflict_eval:")[1].split("\n[")[0]
    # The paper's ViT-L and CLIP decisions are fetched once, for Figure 4's reference lines.
    assert counts["reference_decisions"] == 1
    assert "data/paper/references" in plan.stdout.split("rule shape_bias_report:")[1].split("\n[")[0]
    # A job's block runs up to the next job's timestamp line ("[Wed Nov ...]").
    blocks = [b.split("\n[")[0] for b in plan.stdout.split("rule cue_conflict_eval:")[1:]]
    assert len(blocks) == 2 and all("gpu=1" in block for block in blocks)
    for model in ("alexnet", "vgg16"):
        block = next(b for b in blocks if f"wildcards: model={model}" in b)
        output = next(line for line in block.splitlines() if line.strip().startswith("output:"))
        written = set(re.findall(r"cue-conflict_(\S+?)_session-1\.csv", output))
        assert written == {f"{model}-{tag}" for tag in PAPER_TAGS}


@needs_shared(SAMPLE_DIR, "shared cue-conflict sample")
def test_one_paper_sweep_job_runs_end_to_end_on_the_sample_images_with_random_weights(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    config = write_config(
        work / "sb.yaml", base="config/paper.yaml", imagenet_root=str(_fake_root(tmp_path)),
        shape_bias__weights=None, shape_bias__cue_conflict={"source": "folder", "path": str(SAMPLE_DIR)},
        shape_bias__humans={"source": "none"},
    )
    target = "results/paper/shape_bias/raw/cue-conflict_alexnet-topk10_session-1.csv"
    run = snakemake(work, target, "--cores", "2", "--configfile", str(config))
    assert run.returncode == 0, run.stderr[-3000:]
    for tag in PAPER_TAGS:
        rows = pd.read_csv(work / f"results/paper/shape_bias/raw/cue-conflict_alexnet-{tag}_session-1.csv")
        assert len(rows) == 32 and set(rows["subj"]) == {f"alexnet-{tag}"}
    log = (work / "logs" / "paper" / "shape_bias" / "alexnet.log").read_text()
    assert "32 stimuli decoded once at 224 px (0 resized" in log
    topk10 = next(line for line in log.splitlines() if "alexnet-topk10: Top-K layers:" in line)
    assert all(f"features.{i}_topk (topk 0.1, ties exact)" in topk10 for i in (2, 5, 7, 9, 12))


def test_per_model_sweep_on_the_shrunk_default_writes_the_csvs_of_one_job_per_setting(tmp_path):
    from topkshape.classify.trained import load_trained_classifier
    from topkshape.shape_bias.evaluate import evaluate_cue_conflict
    from topkshape.shape_bias.tags import tag_setting

    work = copy_workflow(tmp_path / "wf")
    config = write_config(work / "tiny.yaml", **TINY_DEFAULT, shape_bias__models=["trained_S1"])
    raw = work / "results" / "default" / "shape_bias" / "raw"
    tags = ["none"] + [f"{mode}{k}" for mode in ("topk", "non_topk") for k in (5, 10, 20, 30, 40, 50)]
    run = snakemake(work, str(raw.relative_to(work) / "cue-conflict_trained_S1-none_session-1.csv"), "--cores", "2", "--configfile", str(config))
    assert run.returncode == 0, run.stderr[-3000:]
    checkpoint = work / "results" / "default" / "train" / "S1" / "baseline" / "seed0" / "model.pt"
    torch.set_num_threads(1)  # as the job ran
    for tag in tags:
        # Today's per-setting job: load the model with this setting's Top-K, decode the folder, evaluate.
        fraction, mode = tag_setting(tag)
        model, classes = load_trained_classifier(checkpoint, fraction, mode, ties="keep")
        rows = evaluate_cue_conflict(model, work / "data" / "default" / "S1-stylized", subject=f"trained_S1-{tag}", classes=classes,
                                     image_size=model.image_size, batch_size=64, device="cpu", progress=False)
        single = tmp_path / f"single_{tag}.csv"
        rows.to_csv(single, index=False)
        assert (raw / f"cue-conflict_trained_S1-{tag}_session-1.csv").read_bytes() == single.read_bytes(), tag
    log = (work / "logs" / "default" / "shape_bias" / "trained_S1.log").read_text()
    assert "(resnet18_cifar)" in log and "layer2.topk (non_topk 0.3, ties keep)" in log
