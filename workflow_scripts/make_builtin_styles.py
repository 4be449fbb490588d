"""Snakemake script: write the generated style images used by AdaIN offline."""

from topkshape.data.build import make_builtin_styles
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "builtin_styles", gpus=sm.resources.get("gpu", 0)):
    make_builtin_styles(sm.output[0], count=sm.params.num_styles, image_size=sm.params.image_size, seed=sm.params.seed)
