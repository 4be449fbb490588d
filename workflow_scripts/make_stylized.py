"""Snakemake script: build the stylized (cue-conflict) evaluation set of one subset."""

from topkshape.data.build import make_stylized
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "stylized"):
    make_stylized(
        sm.config,
        sm.wildcards.subset,
        sm.input.subset,
        sm.output[0],
        style_dir=sm.params.style_dir,
        encoder_path=sm.params.encoder,
        decoder_path=sm.params.decoder,
        threads=sm.threads,
    )
