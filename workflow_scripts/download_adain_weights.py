"""Snakemake script: download the public pytorch-AdaIN weights, checking pinned SHA-256s."""

from topkshape.download import download_file
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "adain_weights", gpus=sm.resources.get("gpu", 0)):
    p = sm.params
    for part in ("encoder", "decoder"):
        download_file(
            p[f"{part}_url"],
            sm.output[part],
            p[f"{part}_sha256"],
            require_pinned=p.require_pinned,
            pin_key=f"stylize.adain.{part}_sha256",
        )
