"""Snakemake script: download the ten human observers' cue-conflict decisions."""

from topkshape.shape_bias.fetch import fetch_human_decisions
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "human_decisions"):
    fetch_human_decisions(sm.params.base_url, sm.output[0], require_pinned=sm.params.require_pinned)
