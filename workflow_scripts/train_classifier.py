"""Snakemake script: train one classifier (subset x variant x seed), resumable."""

from pathlib import Path

from topkshape.classify.train import TrainSettings, diagnostic_sets, train_classifier
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "train", gpus=sm.resources.get("gpu", 0)):
    settings = TrainSettings.from_params(sm.params.train, variant=sm.wildcards.variant, seed=int(sm.wildcards.seed))
    subset = Path(sm.input.subset)
    train_classifier(
        subset / "train",
        subset / "val",
        sm.input.stylized,
        Path(sm.output.summary).parent,
        settings,
        workers=sm.threads if sm.threads > 1 else 0,
        threads=sm.threads,
        mask_images=sm.params.mask_dynamics["images"],
        mask_channels=tuple(sm.params.mask_dynamics["channels"]),
        provenance={"train": sm.params.train, "mask_dynamics": sm.params.mask_dynamics, "wildcards": dict(sm.wildcards.items())},
        diagnostic_dirs=diagnostic_sets(subset),
        cache_images=sm.params.train["cache_images"],
        eval_every=sm.params.train["eval_every"],
    )
