"""Snakemake script: one model, every Top-K setting of the sweep -> one raw decisions CSV per setting, and its tie counts."""

from topkshape.shape_bias.run import run_cue_conflict_sweep
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "cue_conflict_eval", gpus=sm.resources.get("gpu", 0)):
    p = sm.params
    run_cue_conflict_sweep(
        sm.wildcards.model, p.tags, sm.input.images, list(sm.output.raw),
        # Named weights arrive as the file the pretrained_weights rule downloaded.
        weights=sm.input.get("weights", p.weights), image_size=p.image_size, batch_size=p.batch_size, ties=p.ties, tie_seed=p.tie_seed,
        checkpoint=sm.input.get("checkpoint"), threads=sm.threads, images_per_class=p.images_per_class,
        ties_output=sm.output.ties,
    )
