"""Snakemake script: build one classification subset (train/ and val/)."""

from topkshape.data.build import make_subset
from topkshape.workflow import rule_logging

with rule_logging(snakemake.log[0], "subset"):  # noqa: F821 (injected by Snakemake)
    make_subset(snakemake.config, snakemake.wildcards.subset, snakemake.output[0], threads=snakemake.threads)  # noqa: F821
