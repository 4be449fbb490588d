"""Snakemake script: build the stylized (cue-conflict) evaluation set of one subset."""

from topkshape.data.build import make_stylized
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "stylized", gpus=sm.resources.get("gpu", 0)):
    make_stylized(
        sm.wildcards.subset,
        sm.params.classes,
        sm.input.subset,
        sm.output[0],
        options=sm.params.stylize,
        image_size=sm.params.image_size,
        home_textures=sm.params.home_textures,
        style_dir=sm.params.style_dir,
        encoder_path=sm.params.encoder,
        decoder_path=sm.params.decoder,
        threads=sm.threads,
    )
