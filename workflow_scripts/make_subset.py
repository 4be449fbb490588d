"""Snakemake script: build one classification subset (train/ and val/)."""

from topkshape.data.build import make_subset
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "subset", gpus=sm.resources.get("gpu", 0)):
    make_subset(
        sm.wildcards.subset,
        sm.params.classes,
        sm.output[0],
        source=sm.params.source,
        options=sm.params.options,
        imagenet_root=sm.params.imagenet_root,
        threads=sm.threads,
    )
