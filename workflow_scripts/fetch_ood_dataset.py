"""Snakemake script: download one of model-vs-human's OOD datasets, check it against its pin, unpack it."""

from topkshape.robustness.ood import fetch_ood_dataset
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "ood_dataset"):
    fetch_ood_dataset(sm.params.url, sm.params.sha256, sm.output[0], require_pinned=sm.params.require_pinned,
                      pin_key=f"robustness.ood.sha256.{sm.wildcards.ood}")
