"""Snakemake script: each Table 1 model's shape measure against its corruption robustness, with Spearman's rho."""

from topkshape.report.shape_bias_vs_robustness import write_shape_bias_vs_robustness
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "shape_bias_vs_robustness"):
    write_shape_bias_vs_robustness(sm.input.summaries, sm.input.accuracies, sm.output, sm.params.title,
                                   samples=sm.params.bootstrap_samples)
