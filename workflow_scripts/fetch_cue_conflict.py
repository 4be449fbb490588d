"""Snakemake script: download and unpack the cue-conflict stimuli (checked against the pinned SHA-256)."""

from topkshape.shape_bias.fetch import fetch_cue_conflict
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "cue_conflict_images"):
    fetch_cue_conflict(sm.params.url, sm.params.sha256, sm.output[0], require_pinned=sm.params.require_pinned)
