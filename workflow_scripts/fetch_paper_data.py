"""Snakemake script: fetch one part of the paper's published data, every file checked against its pinned SHA-256."""

from topkshape.paper_data import fetch_paper_part
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "paper_data", gpus=sm.resources.get("gpu", 0)):
    fetch_paper_part(sm.wildcards.part, sm.output[0], sm.params.base_url, threads=max(4, 4 * sm.threads))
