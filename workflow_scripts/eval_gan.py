"""Snakemake script: FID/KID of one FastGAN run against its few-shot set (torch-fidelity)."""

from pathlib import Path

import torch

from topkshape.gan.evaluate import evaluate_run
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "gan_eval", gpus=sm.resources.get("gpu", 0)):
    torch.set_num_threads(sm.threads)
    # torch-fidelity's Inception arrives as the file the pretrained_weights rule downloaded.
    options = {**sm.params.eval, **({"feature_extractor_weights_path": sm.input.inception} if "inception" in sm.input.keys() else {})}
    evaluate_run(Path(sm.input.generator).parent, sm.input.real, options, sm.output.metrics, sm.output.preview,
                 classifier=sm.input.get("classifier"), seed=int(sm.wildcards.gan_seed))
