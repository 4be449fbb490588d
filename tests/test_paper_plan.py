"""The paper configuration plans the paper's job counts, each GPU job asking for one GPU."""

from __future__ import annotations

import re

import pytest

from topkshape.robustness.ood_datasets import OOD_DATASETS
from workflow_support import copy_workflow, snakemake, write_config

pytestmark = pytest.mark.slow


def _paper_plan(tmp_path, *options: str) -> tuple[str, dict[str, int]]:
    """The dry run of the pinned paper config and its jobs per rule; ``options`` follow --configfile, so a
    leading config file is layered over it."""
    work = copy_workflow(tmp_path / "wf")
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    # The shipped config stops until the AdaIN weights are pinned (tests/test_plan_checks.py): pin them.
    # So do model-vs-human's 17 OOD archives, which publish no hashes either.
    pinned = write_config(work / "pinned.yaml", base="config/paper.yaml", stylize__adain__encoder_sha256="a" * 64,
                          stylize__adain__decoder_sha256="b" * 64, robustness__ood__sha256={name: "c" * 64 for name in OOD_DATASETS})
    plan = snakemake(work, "all", "-n", "--configfile", str(pinned), *options, "--config", f"imagenet_root={tmp_path / 'imagenet'}")
    assert plan.returncode == 0, plan.stderr[-3000:]
    return plan.stdout, {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", plan.stdout, re.MULTILINE)}


def test_paper_config_plans_every_stage_with_the_paper_counts(tmp_path):
    stdout, counts = _paper_plan(tmp_path, "--cores", "8", "--resources", "gpu=2")
    assert counts["train"] == 2 * 3 * 3  # subsets x variants x seeds
    assert counts["gan_train"] == counts["gan_eval"] == 4 * 2 * 3  # classes x variants x seeds
    # One sweep job per model evaluates its 1 + 6 K x 2 modes settings (13 raw CSVs each).
    assert counts["cue_conflict_eval"] == 2
    assert counts["subset"] == 2 and counts["stylized"] == 2 and counts["fewshot"] == 4
    # AlexNet, VGG16 (Figures 4/5 and LPIPS), VGG-19 (Figures 2/3), Inception (FID): downloaded once each.
    assert counts["pretrained_weights"] == 5 and counts["adain_weights"] == 1  # AlexNet, VGG16, VGG-19, Inception, the atlas's ResNet-50
    assert counts["atlas_eval"] == 1 and counts["atlas_report"] == 1
    # The atlas's one entry on each of the 17 OOD datasets, each dataset and its humans' decisions downloaded once.
    assert counts["ood_eval"] == counts["ood_dataset"] == counts["ood_humans"] == 17 and counts["ood_report"] == 1
    for rule in ("train", "gan_train", "gan_eval", "cue_conflict_eval", "texture_synthesis", "stylized", "ood_eval"):
        blocks = [b.split("\n\n")[0] for b in stdout.split(f"rule {rule}:")[1:]]
        assert blocks and all("gpu=1" in block for block in blocks), rule


def test_smoke_overlay_trains_the_gan_on_two_sets_and_still_extracts_all_four(tmp_path):
    # The overlay is a second config file after the pinned paper config (--configfile takes both).
    stdout, counts = _paper_plan(tmp_path, "config/paper-smoke.yaml", "--cores", "2")
    assert counts["gan_train"] == counts["gan_eval"] == 2 * 2 * 1  # gan.fewshot_sets x variants x seeds
    assert counts["fewshot"] == 4
    trained = set(re.findall(r"results/paper-smoke/gan/(\w+)/fastgan/seed0/generator_ema\.pt", stdout))
    assert trained == {"jeep", "train"}
    # The mask-dynamics figure reads the first listed set's Top-K run.
    assert "results/paper-smoke/gan/jeep/fastgan_topk/seed0/generator_ema.pt" in stdout.split("rule gan_mask_dynamics:")[1].split("\n\n")[0]
