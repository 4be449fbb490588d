"""Snakemake script: every Table 1 model of one subset on its common-corruption sets (Table 1b)."""

from topkshape.robustness.corruptions import evaluate_trained_models
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "corruption_eval", gpus=sm.resources.get("gpu", 0)):
    evaluate_trained_models(sm.wildcards.subset, sm.params.runs, sm.input.models, sm.input.corrupted, sm.output[0],
                            batch_size=sm.params.batch_size, threads=sm.threads)
