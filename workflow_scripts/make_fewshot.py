"""Snakemake script: build one few-shot synthesis set (or copy the paper's verified one)."""

from topkshape.data.build import make_fewshot
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "fewshot", gpus=sm.resources.get("gpu", 0)):
    make_fewshot(
        sm.wildcards.fewshot,
        sm.params.cls,
        sm.output[0],
        source=sm.params.source,
        count=sm.params.images,
        options=sm.params.options,
        imagenet_root=sm.params.imagenet_root,
        paper_folder=sm.input.get("paper"),
        paper_images=sm.params.paper_images,
        threads=sm.threads,
    )
