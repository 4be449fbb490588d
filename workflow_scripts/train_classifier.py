"""Snakemake script: train one classifier (subset x variant x seed), resumable."""

from pathlib import Path

from topkshape.classify.train import TrainSettings, train_classifier
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "train"):
    cfg = sm.config["train"]
    settings = TrainSettings(
        arch=cfg["arch"],
        variant=sm.wildcards.variant,
        topk_fraction=cfg["topk_fraction"],
        epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        lr=cfg["lr"],
        image_size=cfg["image_size"],
        width=cfg["width"],
        seed=int(sm.wildcards.seed),
    )
    subset = Path(sm.input.subset)
    train_classifier(
        subset / "train",
        subset / "val",
        sm.input.stylized,
        Path(sm.output.summary).parent,
        settings,
        workers=sm.threads if sm.threads > 1 else 0,
        threads=sm.threads,
        mask_images=sm.config["texture"]["mask_dynamics"]["images"],
        mask_channels=tuple(sm.config["texture"]["mask_dynamics"]["channels"]),
    )
