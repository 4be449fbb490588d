"""Snakemake script: one model x Top-K setting on the cue-conflict images -> raw decisions CSV."""

from topkshape.shape_bias.run import run_cue_conflict_job
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "cue_conflict_eval"):
    run_cue_conflict_job(
        sm.config["shape_bias"], sm.wildcards.model, sm.wildcards.tag, sm.input.images, sm.output[0],
        checkpoint=sm.input.get("checkpoint"), threads=sm.threads,
    )
