"""Snakemake script: the embedded default's generated stimuli for the atlas (16 categories' names, toy shapes)."""

from topkshape.data.synthetic import write_sixteen_category_stimuli
from topkshape.shape_bias.decisions import sixteen_class_indices
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "atlas_stimuli"):
    write_sixteen_category_stimuli(sm.output[0], list(sixteen_class_indices()), per_category=sm.params.per_category,
                                   seed=sm.params.seed, threads=sm.threads, progress=False)
