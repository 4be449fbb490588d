"""Snakemake script: write the generated style images used by AdaIN offline."""

from topkshape.data.build import make_builtin_styles
from topkshape.workflow import rule_logging

with rule_logging(snakemake.log[0], "builtin_styles"):  # noqa: F821 (injected by Snakemake)
    make_builtin_styles(snakemake.config, snakemake.output[0])  # noqa: F821
