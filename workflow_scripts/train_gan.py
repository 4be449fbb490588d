"""Snakemake script: train one FastGAN run (few-shot set x variant x seed), resumable."""

from pathlib import Path

from topkshape.gan.train import GanSettings, train_fastgan
from topkshape.workflow import rule_logging

sm = snakemake  # noqa: F821 (injected by Snakemake)
with rule_logging(sm.log[0], "gan_train"):
    cfg = sm.config["gan"]
    topk = cfg["topk_fraction"][sm.wildcards.fewshot] if sm.wildcards.gan_variant == "fastgan_topk" else None
    settings = GanSettings(
        im_size=cfg["im_size"], nz=cfg["nz"], ngf=cfg["ngf"], ndf=cfg["ndf"], batch_size=cfg["batch_size"], lr=cfg["lr"],
        ema_decay=cfg["ema_decay"], iterations=cfg["iterations"], policy=cfg["policy"], topk_fraction=topk,
        topk_resolution=cfg["topk_resolution"], noise_injection=cfg["noise_injection"], recon_loss=cfg["recon_loss"],
        resize=cfg["resize"], checkpoint_every=cfg["checkpoint_every"], snapshot_every=cfg["eval"]["snapshot_every"],
        seed=int(sm.wildcards.gan_seed),
    )
    masks = sm.config["texture"]["mask_dynamics"]
    train_fastgan(sm.input[0], Path(sm.output.generator).parent, settings, threads=sm.threads,
                  mask_latents=masks["images"], mask_channels=tuple(masks["channels"]))
