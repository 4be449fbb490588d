"""Snakemake script: the human observers' raw decisions on one OOD dataset, each file checked against its shipped pin."""

from topkshape.robustness.ood import fetch_human_raw_data
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "ood_humans"):
    fetch_human_raw_data(sm.wildcards.ood, sm.output[0], base_url=sm.params.base_url, require_pinned=sm.params.require_pinned)
