"""Snakemake script: Figures 2 and 3 with their measures (texture_synthesis.csv)."""

import torch

from topkshape.texture.experiment import run_texture_experiments
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "texture_synthesis", gpus=sm.resources.get("gpu", 0)):
    torch.set_num_threads(sm.threads)
    # Named weights arrive as the file the pretrained_weights rule downloaded.
    options = {**sm.params.texture, **({"weights": sm.input.weights} if "weights" in sm.input.keys() else {})}
    run_texture_experiments(options, sm.input.get("checkpoint"), sm.input.targets, sm.output)
