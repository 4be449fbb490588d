"""Snakemake script: download the public pytorch-AdaIN weights, checking pinned SHA-256s."""

from topkshape.download import download_file
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "adain_weights"):
    adain = sm.config["stylize"]["adain"]
    download_file(adain["encoder_url"], sm.output.encoder, adain["encoder_sha256"])
    download_file(adain["decoder_url"], sm.output.decoder, adain["decoder_sha256"])
