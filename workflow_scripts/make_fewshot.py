"""Snakemake script: build one few-shot synthesis set."""

from topkshape.data.build import make_fewshot
from topkshape.workflow import rule_logging

with rule_logging(snakemake.log[0], "fewshot"):  # noqa: F821 (injected by Snakemake)
    make_fewshot(snakemake.config, snakemake.wildcards.fewshot, snakemake.output[0], threads=snakemake.threads)  # noqa: F821
