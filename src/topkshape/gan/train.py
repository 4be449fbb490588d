"""Train FastGAN (with or without Top-K) on a folder of images; resumable and seeded.

The loop follows FastGAN's ``train.py`` as the paper's code runs it
(Crazy-Jack/nips2023_shape_vs_texture, ``few-shot-img-syn/TopKGen/train.py``):

* DiffAugment (``policy``) on the real batch and, separately, on each generator output;
* discriminator: hinge with a random margin, ``relu(U(0.8, 1) - D(real))`` and
  ``relu(U(0.8, 1) + D(fake))`` (the reference's ``torch.rand_like(pred) * 0.2 + 0.8``),
  plus the reconstruction loss of its three decoders on the real batch, summed over
  the batch as the reference sums LPIPS;
* generator: ``-mean D(G(z))``; Adam (lr 2e-4, betas (0.5, 0.999)) for both;
* an exponential moving average of the generator's parameters (decay 0.999) for
  sampling; its buffers (BatchNorm statistics, spectral-norm vectors) follow the
  trained generator's.

Reconstruction loss: ``recon_loss="lpips"`` is the reference's (LPIPS VGG,
:mod:`topkshape.gan.perceptual`; torchvision's VGG-16 weights must be in place);
``"l1"``/``"mse"`` (mean per image, summed over the batch) need no pretrained weights.

FID during training and the reference's rollback on stalled FID: the ``evaluate``
argument of :func:`train_fastgan` and ``settings.rollback`` (:mod:`topkshape.gan.rollback`).

Resuming: ``out_dir/checkpoint.pt`` (both networks, the EMA generator, both
optimizers, the iteration and the steps run, RNG states, settings, losses, the FID
scores with the best state) is replaced atomically every ``checkpoint_every`` steps and
at the end. Every random generator is re-seeded from ``(seed, step)`` at each checkpoint
boundary and the data order is a pure function of ``(seed, step)``, so on the CPU (with
the same thread count: float sums depend on it, and a deterministic ``evaluate``) a run
killed at any moment and restarted ends with the same weights as one never interrupted.
Without a rollback ``step`` equals the iteration.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import logging
import math
import shutil
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from topkshape.atomic import atomic_file
from topkshape.checkpoint import (
    dataset_identity,
    finish_run,
    restore_rng_states,
    resumable_state,
    rng_states,
    save_checkpoint,
    seed_everything,
)
from topkshape.errors import ConfigError, InputDataError
from topkshape.gan.diffaug import diff_augment
from topkshape.gan.fastgan import Discriminator, Generator, crop_quadrant
from topkshape.gan.images import (  # noqa: F401 (re-exported)
    IMAGE_EXTENSIONS,
    find_images,
    load_training_images,
    square_image,
)
from topkshape.gan.perceptual import LpipsVgg
from topkshape.gan.rollback import Evaluate, cpu_copy, perturb_parameters
from topkshape.gan.sampling import generate_samples, generated_pixels, load_generator  # noqa: F401 (re-exported)
from topkshape.gan.settings import (  # noqa: F401 (re-exported)
    RECON_LOSSES,
    RESIZE_MODES,
    GanSettings,
    RollbackSettings,
    build_generator,
)
from topkshape.mask_recording import MaskRecorder
from topkshape.models import topk_layers

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
GENERATOR_EMA = "generator_ema.pt"
# The generator before any step (a function of the seed): its FID is the yardstick of how far training got.
GENERATOR_INIT = "generator_init.pt"
LOSSES = "losses.csv"
SNAPSHOTS = "snapshots"
EVALUATIONS = "evaluations.csv"
GENERATOR_EMA_BEST = "generator_ema_best.pt"
LOSS_COLUMNS = ("iteration", "loss_d", "loss_g", "recon", "images_per_s", "step")
EVALUATION_COLUMNS = ("step", "iteration", "fid", "best_fid", "rolled_back_to")


def _block_seed(seed: int, iteration: int) -> int:
    return seed * 1_000_003 + iteration


@lru_cache(maxsize=4)
def _epoch_order(count: int, seed: int, epoch: int) -> Tensor:
    return torch.randperm(count, generator=torch.Generator().manual_seed(_block_seed(seed, epoch) + 7))


def batch_indices(count: int, batch_size: int, seed: int, iteration: int) -> Tensor:
    """Images of ``iteration``: the stream of per-epoch permutations, cut into batches.

    A pure function of its arguments, so a resumed run sees the same batches.
    """
    taken: list[Tensor] = []
    position = iteration * batch_size
    end = position + batch_size
    while position < end:
        epoch, offset = divmod(position, count)
        take = min(end - position, count - offset)
        taken.append(_epoch_order(count, seed, epoch)[offset:offset + take])
        position += take
    return torch.cat(taken)


def _real_batch(images: Tensor, settings: GanSettings, iteration: int) -> Tensor:
    batch = images[batch_indices(len(images), settings.batch_size, settings.seed, iteration)].float() / 127.5 - 1.0
    flip = torch.rand(len(batch)) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), batch.flip(-1), batch)


def _reconstruction_loss(reconstructions: tuple[Tensor, Tensor, Tensor], real: Tensor, part: int, kind: str,
                         perceptual: nn.Module | None = None) -> Tensor:
    """The three decoders' loss against the (augmented) real batch at their size, summed over the batch.

    ``"lpips"``: one LPIPS distance per image (``perceptual``), as the reference's
    ``percept(rec, target).sum()``; ``"l1"``/``"mse"``: the mean per image instead.
    """
    rec_big, rec_small, rec_part = reconstructions
    size = rec_big.shape[-1]  # the discriminator's small_size
    whole = F.interpolate(real, size=size)
    quadrant = F.interpolate(crop_quadrant(real, part), size=size)
    total = real.new_zeros(())
    for rec, target in ((rec_big, whole), (rec_small, whole), (rec_part, quadrant)):
        if kind == "lpips":
            if perceptual is None:
                raise ValueError("recon_loss lpips needs the LPIPS network")
            per_image = perceptual(rec, target)
        else:
            loss = F.l1_loss if kind == "l1" else F.mse_loss
            per_image = loss(rec, target, reduction="none").flatten(1).mean(1)
        total = total + per_image.sum()
    return total


def _train_step(
    generator: Generator,
    discriminator: Discriminator,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer,
    real: Tensor,
    settings: GanSettings,
    perceptual: nn.Module | None = None,
) -> dict[str, float]:
    """One FastGAN iteration: a discriminator step, then a generator step."""
    noise = torch.randn(real.shape[0], settings.nz).to(real.device)
    fakes = generator(noise)
    real = diff_augment(real, settings.policy)
    fakes = [diff_augment(fake, settings.policy) for fake in fakes]

    optimizer_d.zero_grad(set_to_none=True)
    logits_real, reconstructions, part = discriminator(real, "real")
    loss_real = F.relu(torch.rand_like(logits_real) * 0.2 + 0.8 - logits_real).mean()
    recon = _reconstruction_loss(reconstructions, real, part, settings.recon_loss, perceptual)
    (loss_real + recon).backward()
    logits_fake = discriminator([fake.detach() for fake in fakes], "fake")
    loss_fake = F.relu(torch.rand_like(logits_fake) * 0.2 + 0.8 + logits_fake).mean()
    loss_fake.backward()
    optimizer_d.step()

    optimizer_g.zero_grad(set_to_none=True)
    loss_g = -discriminator(fakes, "fake").mean()
    loss_g.backward()
    optimizer_g.step()
    return {"loss_d": (loss_real + loss_fake).item(), "loss_g": loss_g.item(), "recon": recon.item()}


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for average, current in zip(ema.parameters(), model.parameters()):
        average.lerp_(current, 1.0 - decay)
    for average, current in zip(ema.buffers(), model.buffers()):
        average.copy_(current)


def _new_window() -> dict[str, float]:
    return {"loss_d": 0.0, "loss_g": 0.0, "recon": 0.0, "count": 0, "images": 0, "seconds": 0.0}


def _save_generator(path: Path, generator: nn.Module, settings: GanSettings) -> None:
    state = {k: v.detach().cpu() for k, v in generator.state_dict().items()}
    with atomic_file(path) as tmp:
        torch.save({"generator": state, "settings": dataclasses.asdict(settings)}, tmp)


def train_fastgan(
    image_dir: str | Path,
    out_dir: str | Path,
    settings: GanSettings,
    *,
    device: str | None = None,
    progress: bool = True,
    threads: int | None = None,
    mask_latents: int = 0,
    mask_channels: tuple[int, ...] = (0, 1, 2, 3),
    evaluate: Evaluate | None = None,
    lpips_backbone: str | Path | None = None,
) -> dict[str, Any]:
    """Train, then write ``generator_ema.pt`` (state dict + settings) and ``losses.csv``.

    ``generator_init.pt``, the generator before any step, is written first: the FID at
    initialisation against which the evaluation measures how far training got.

    With ``mask_latents > 0`` and a Top-K layer in the generator, the Top-K masks of that
    many fixed latent codes (channels ``mask_channels``) are recorded at iteration 0 and at
    every checkpoint into ``masks.pt`` (the GAN's mask dynamics, Figure 8).

    ``lpips_backbone``: the VGG-16 state-dict file of ``recon_loss="lpips"`` (None: torchvision's cache).

    ``evaluate(generator_ema, iteration) -> float`` (an FID: lower is better), when given,
    scores the EMA generator every ``settings.eval_every`` iterations and at the end, in
    an RNG context of its own; the scores go to ``evaluations.csv`` and the best EMA
    generator to ``generator_ema_best.pt``. ``settings.rollback`` (which needs it) then
    acts as the paper code's rollback (:mod:`topkshape.gan.rollback`): the iteration can go
    back, so ``step`` (iterations actually run) may exceed ``settings.iterations``.

    Resumes from ``out_dir/checkpoint.pt`` only when it is an unfinished checkpoint of this
    very run (same settings, same images); otherwise starts at iteration 0 and logs why in
    one line. A finished run removes its checkpoint, so a forced rerun trains from scratch.
    Returns a summary: settings, iterations, the last losses row, mean images/s.
    """
    out_dir = Path(out_dir)
    if settings.rollback.enabled and evaluate is None:
        raise ConfigError("gan.rollback needs FID during training: pass train_fastgan an evaluate callback, or set rollback.enabled: false")
    images = load_training_images(image_dir, settings.im_size, settings.resize, settings.resample)
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    devices = [dev] if dev.type == "cuda" else []
    perceptual = LpipsVgg(lpips_backbone).to(dev) if settings.recon_loss == "lpips" else None

    seed_everything(settings.seed)
    generator = build_generator(settings).to(dev)
    discriminator = Discriminator(ndf=settings.ndf, im_size=settings.im_size, small_size=settings.small_size).to(dev)
    generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_generator(out_dir / GENERATOR_INIT, generator_ema, settings)
    betas = (settings.beta1, settings.beta2)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=settings.lr, betas=betas)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=settings.lr, betas=betas)
    networks = {"generator": generator, "discriminator": discriminator, "generator_ema": generator_ema,
                "optimizer_g": optimizer_g, "optimizer_d": optimizer_d}

    checkpoint_path = out_dir / CHECKPOINT
    start, rows, window = 0, [], _new_window()
    identity = {
        "settings": dataclasses.asdict(settings),
        "data": dataset_identity(image_dir),
        "mask_recording": {"latents": mask_latents, "channels": list(mask_channels)},
        "fid_during_training": evaluate is not None,
    }
    scores: dict[str, Any] = {"best": None, "stalled": 0, "rollbacks": 0, "evaluations": []}
    step = 0
    state = resumable_state(checkpoint_path, identity, map_location=dev)
    if state is not None:
        for name, network in networks.items():
            network.load_state_dict(state[name])
        restore_rng_states(state["rng"])
        start, rows, window = state["iteration"], list(state["losses"]), dict(state["window"])
        step = state["step"]
        scores = {**cpu_copy(state["scores"]), "evaluations": list(state["scores"]["evaluations"])}
        logger.info("resuming from %s at iteration %d", checkpoint_path, start)
    else:
        # Snapshots of an earlier run (other settings, or a finished run forced again) must not
        # become candidates of the evaluation's selection: best.
        shutil.rmtree(out_dir / SNAPSHOTS, ignore_errors=True)

    recorder = _mask_recorder(generator, settings, mask_latents, mask_channels)
    if recorder is not None:
        recorder.masks = dict(state.get("masks", {})) if state is not None else {}
        recorder.outputs = dict(state.get("mask_outputs", {})) if state is not None else {}
        if start == 0:
            recorder.record(0)
    generator.train()
    discriminator.train()
    iteration = start
    bar = tqdm(total=settings.iterations, initial=start, desc="FastGAN", disable=None if progress else True)
    while iteration < settings.iterations:
        # Randomness is a function of the steps run (not of the iteration, which a rollback
        # sets back), so a resumed run and a rolled-back one both draw fresh batches.
        if step % settings.checkpoint_every == 0:
            seed_everything(_block_seed(settings.seed, step))
        started = time.perf_counter()
        real = _real_batch(images, settings, step).to(dev, non_blocking=True)
        losses = _train_step(generator, discriminator, optimizer_g, optimizer_d, real, settings, perceptual)
        _update_ema(generator_ema, generator, settings.ema_decay)
        if not all(math.isfinite(v) for v in losses.values()):
            raise InputDataError(f"training diverged at iteration {iteration}: {losses}; lower lr")
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        for key, value in losses.items():
            window[key] += value
        window["count"] += 1
        window["images"] += len(real)
        window["seconds"] += time.perf_counter() - started
        step += 1
        iteration += 1
        bar.update(1)
        if iteration % settings.log_every == 0 or iteration == settings.iterations:
            count = window["count"]
            rows.append({
                "iteration": iteration,
                "loss_d": window["loss_d"] / count,
                "loss_g": window["loss_g"] / count,
                "recon": window["recon"] / count,
                "images_per_s": window["images"] / max(window["seconds"], 1e-9),
                "step": step,
            })
            window = _new_window()
            bar.set_postfix(loss_d=f"{rows[-1]['loss_d']:.3f}", loss_g=f"{rows[-1]['loss_g']:.3f}")
        if settings.snapshot_every and step % settings.snapshot_every == 0:
            _save_generator(out_dir / SNAPSHOTS / f"generator_ema_{step:07d}.pt", generator_ema, settings)
        if evaluate is not None and (iteration % settings.eval_every == 0 or iteration == settings.iterations):
            with torch.random.fork_rng(devices=devices):
                fid = float(evaluate(generator_ema, iteration))
            row = _score(scores, fid, iteration, step, networks)
            if _stalled(scores, settings):
                iteration = _roll_back(scores, networks, settings, step)
                row["rolled_back_to"] = iteration
                bar.n = iteration
                bar.refresh()
                logger.info("FID stalled for %d evaluations: back to iteration %d (best FID %.4g), generator perturbed by %g",
                            settings.rollback.patience, iteration, scores["best"]["fid"], settings.rollback.eps_g)
            scores["evaluations"].append(row)
        finished = iteration >= settings.iterations
        if step % settings.checkpoint_every == 0 or finished:
            if recorder is not None:
                recorder.record(step)
            save_checkpoint(
                {
                    "identity": identity,
                    "finished": finished,
                    "iteration": iteration,
                    "step": step,
                    **{name: network.state_dict() for name, network in networks.items()},
                    "rng": rng_states(),
                    "losses": rows,
                    "window": window,
                    "masks": recorder.masks if recorder is not None else {},
                    "mask_outputs": recorder.outputs if recorder is not None else {},
                    "scores": scores,
                },
                checkpoint_path,
            )
    bar.close()

    if recorder is not None:
        recorder.save(out_dir / "masks.pt")
    if evaluate is not None:
        _write_evaluations(out_dir, scores, settings)
    _save_generator(out_dir / GENERATOR_EMA, generator_ema, settings)
    with atomic_file(out_dir / LOSSES) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOSS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    finish_run(checkpoint_path)
    best = scores["best"]
    return {
        "settings": dataclasses.asdict(settings),
        "iterations": settings.iterations,
        "steps": step,
        "images": len(images),
        "final": rows[-1] if rows else None,
        "mean_images_per_s": sum(r["images_per_s"] for r in rows) / len(rows) if rows else None,
        "best_fid": best["fid"] if best else None,
        "best_iteration": best["iteration"] if best else None,
        "rollbacks": scores["rollbacks"],
    }


def _score(scores: dict[str, Any], fid: float, iteration: int, step: int, networks: dict[str, Any]) -> dict[str, Any]:
    """Record one evaluation; a strictly lower finite FID (the reference's test) becomes the best state."""
    best = scores["best"]
    if math.isfinite(fid) and (best is None or fid < best["fid"]):
        scores["best"] = {"fid": fid, "iteration": iteration, "step": step,
                          **{name: cpu_copy(network.state_dict()) for name, network in networks.items()}}
        scores["stalled"] = 0
    else:
        scores["stalled"] += 1
    best_fid = scores["best"]["fid"] if scores["best"] is not None else ""
    return {"step": step, "iteration": iteration, "fid": fid, "best_fid": best_fid, "rolled_back_to": ""}


def _stalled(scores: dict[str, Any], settings: GanSettings) -> bool:
    rollback = settings.rollback
    if not rollback.enabled or scores["best"] is None or scores["stalled"] < rollback.patience:
        return False
    return rollback.max_rollbacks is None or scores["rollbacks"] < rollback.max_rollbacks


def _roll_back(scores: dict[str, Any], networks: dict[str, Any], settings: GanSettings, step: int) -> int:
    """Reload the best state, perturb the networks as configured; return the best's iteration."""
    best = scores["best"]
    for name, network in networks.items():
        network.load_state_dict(best[name])
    noise = torch.Generator().manual_seed(_block_seed(settings.seed, step) + 104_729)
    perturb_parameters(networks["generator"], settings.rollback.eps_g, noise)
    perturb_parameters(networks["discriminator"], settings.rollback.eps_d, noise)
    scores["stalled"] = 0
    scores["rollbacks"] += 1
    return int(best["iteration"])


def _write_evaluations(out_dir: Path, scores: dict[str, Any], settings: GanSettings) -> None:
    with atomic_file(out_dir / EVALUATIONS) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=EVALUATION_COLUMNS)
        writer.writeheader()
        writer.writerows(scores["evaluations"])
    if scores["best"] is not None:
        best_ema = build_generator(settings)
        best_ema.load_state_dict(scores["best"]["generator_ema"])
        _save_generator(out_dir / GENERATOR_EMA_BEST, best_ema, settings)


def _mask_recorder(generator: nn.Module, settings: GanSettings, count: int, channels: tuple[int, ...]):
    """A recorder of the generator's Top-K layer on fixed latent codes, or None."""
    layers = topk_layers(generator)
    if count <= 0 or not layers:
        return None
    latents = torch.randn(count, settings.nz, generator=torch.Generator().manual_seed(settings.seed + 7919))
    return MaskRecorder(generator, next(iter(layers)), latents, list(channels), keep_outputs=figure_thumbnail)


FIGURE_THUMBNAIL = 64  # px: Figure 8's tiles are ~0.6 inch; 101 recordings of 2 images at 64 px are ~2.5 MB


def figure_thumbnail(images: Tensor) -> Tensor:
    """Generated images as Figure 8 shows them: uint8 pixels as the samples are saved, at most 64 px."""
    if max(images.shape[-2:]) > FIGURE_THUMBNAIL:
        images = F.interpolate(images.float(), size=FIGURE_THUMBNAIL, mode="area")
    return generated_pixels(images)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m topkshape.gan.train IMAGES OUT [--iterations ...]``."""
    parser = argparse.ArgumentParser(description="Train FastGAN (optionally with Top-K), resumable.")
    parser.add_argument("image_dir")
    parser.add_argument("out_dir")
    defaults = GanSettings()
    # No FID scorer on the command line, so no rollback (it needs one): that field stays off.
    names = [f.name for f in dataclasses.fields(GanSettings) if f.name != "rollback"]
    for name in names:
        default = getattr(defaults, name)
        flag = f"--{name.replace('_', '-')}"
        if name == "topk_fraction":
            parser.add_argument(flag, type=float, default=None)
        elif isinstance(default, bool):
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = GanSettings(**{name: getattr(args, name) for name in names})
    train_fastgan(args.image_dir, args.out_dir, settings, device=args.device, progress=not args.no_progress, threads=args.threads)


if __name__ == "__main__":
    main()
