"""Snakemake script: train one FastGAN run (few-shot set x variant x seed), resumable."""

from pathlib import Path

from topkshape.gan.rollback import fid_evaluator
from topkshape.gan.train import GanSettings, train_fastgan
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "gan_train", gpus=sm.resources.get("gpu", 0)):
    settings = GanSettings.from_params(
        sm.params.gan, topk_fraction=sm.params.topk_fraction, snapshot_every=sm.params.snapshot_every, seed=int(sm.wildcards.gan_seed)
    )
    # FID during training drives the paper code's rollback (gan.rollback); off in the default.
    evaluate = None
    if sm.params.fid is not None:
        # torch-fidelity's Inception arrives as the file the pretrained_weights rule downloaded.
        options = {**sm.params.fid, **({"feature_extractor_weights_path": sm.input.inception} if "inception" in sm.input.keys() else {})}
        evaluate = fid_evaluator(sm.input.images, options, im_size=settings.im_size, resize=settings.resize, resample=settings.resample,
                                 seed=settings.seed, classifier=sm.input.get("classifier"))
    masks = sm.params.mask_dynamics
    train_fastgan(sm.input.images, Path(sm.output.generator).parent, settings, threads=sm.threads,
                  mask_latents=masks["images"], mask_channels=tuple(masks["channels"]), evaluate=evaluate,
                  lpips_backbone=sm.input.get("lpips"))
