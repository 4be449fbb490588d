"""Snakemake script: one model, every Top-K setting under N random tie orders -> one CSV of decisions."""

from topkshape.shape_bias.run import run_tie_spread
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "cue_conflict_tie_spread", gpus=sm.resources.get("gpu", 0)):
    p = sm.params
    run_tie_spread(
        sm.wildcards.model, p.tags, sm.input.images, sm.output[0], p.draws,
        weights=sm.input.get("weights", p.weights), image_size=p.image_size, batch_size=p.batch_size,
        checkpoint=sm.input.get("checkpoint"), threads=sm.threads, images_per_class=p.images_per_class,
    )
