"""Snakemake script: the grid of the GAN generator's Top-K masks over training iterations (Figure 8)."""

from pathlib import Path

from topkshape.report.style import use_paper_style
from topkshape.texture.experiment import render_mask_dynamics
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "gan_mask_dynamics", gpus=sm.resources.get("gpu", 0)):
    # No declared input names the recorded channels: they are labelled by their position in masks.pt.
    use_paper_style()
    render_mask_dynamics(Path(sm.input.generator).parent / "masks.pt", [sm.output.png, sm.output.pdf], title=sm.params.title,
                         time_unit="iteration")
