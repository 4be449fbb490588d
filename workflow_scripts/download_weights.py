"""Snakemake script: download one pretrained weight file, checked against its pin (topkshape.pretrained)."""

from topkshape.pretrained import download_weights
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "pretrained_weights", gpus=sm.resources.get("gpu", 0)):
    p = sm.params
    download_weights(sm.wildcards.weights_file, sm.output[0], p.url, p.sha256, require_pinned=p.require_pinned)
