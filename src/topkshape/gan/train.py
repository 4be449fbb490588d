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

Offline substitutions: the reference's reconstruction loss is LPIPS (VGG weights that
need a download); here it is a pixel loss, ``recon_loss="l1"`` or ``"mse"`` (mean per
image, summed over the batch).

Resuming: ``out_dir/checkpoint.pt`` (both networks, the EMA generator, both
optimizers, the iteration, RNG states, settings, losses) is replaced atomically every
``checkpoint_every`` iterations and at the end. Every random generator is re-seeded
from ``(seed, iteration)`` at each checkpoint boundary and the data order is a pure
function of ``(seed, iteration)``, so on the CPU (with the same thread count: float
sums depend on it) a run killed at any moment and restarted ends with the same
weights as one never interrupted.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from topkshape.atomic import atomic_directory, atomic_file
from topkshape.checkpoint import load_checkpoint, restore_rng_states, rng_states, save_checkpoint, seed_everything
from topkshape.errors import ConfigError, InputDataError
from topkshape.gan.diffaug import diff_augment, parse_policy
from topkshape.gan.fastgan import IMAGE_SIZES, SMALL_SIZE, Discriminator, Generator, crop_quadrant
from topkshape.ops import check_fraction

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
GENERATOR_EMA = "generator_ema.pt"
LOSSES = "losses.csv"
SNAPSHOTS = "snapshots"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
RECON_LOSSES = ("l1", "mse")
RESIZE_MODES = ("center_crop", "stretch")
LOSS_COLUMNS = ("iteration", "loss_d", "loss_g", "recon", "images_per_s")


@dataclass(frozen=True)
class GanSettings:
    """Everything that determines a FastGAN run's result.

    ``resize``: ``"center_crop"`` (shorter side to ``im_size``, then the centre) or
    ``"stretch"`` (both sides to ``im_size``, the reference's ``Resize((s, s))``).
    ``noise_injection=False`` matches the paper's code, whose noise injection is a no-op.
    ``snapshot_every`` > 0 also keeps the EMA generator of every such iteration under
    ``snapshots/`` (the paper reports the best FID over the run, measured every 1,000).
    ``log_every``: iterations averaged into one row of ``losses.csv``.
    """

    im_size: int = 256
    nz: int = 256
    ngf: int = 64
    ndf: int = 64
    batch_size: int = 8
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = 0.999
    iterations: int = 50_000
    policy: str = "color,translation"
    topk_fraction: float | None = None
    topk_resolution: int = 32
    noise_injection: bool = True
    recon_loss: str = "l1"
    resize: str = "center_crop"
    checkpoint_every: int = 1000
    snapshot_every: int = 0
    log_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.im_size not in IMAGE_SIZES:
            raise ConfigError(f"im_size must be one of {IMAGE_SIZES}, got {self.im_size!r}")
        for name in ("nz", "ngf", "ndf", "batch_size", "iterations", "checkpoint_every", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.snapshot_every, bool) or not isinstance(self.snapshot_every, int) or self.snapshot_every < 0:
            raise ConfigError(f"snapshot_every must be 0 (off) or a positive integer, got {self.snapshot_every!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if self.recon_loss not in RECON_LOSSES:
            raise ConfigError(f"recon_loss must be one of {RECON_LOSSES} (LPIPS needs downloaded VGG weights), got {self.recon_loss!r}")
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        parse_policy(self.policy)
        if self.topk_fraction is not None:
            try:
                check_fraction(self.topk_fraction)
            except ValueError as error:
                raise ConfigError(f"topk_fraction: {error}") from None
            allowed = [8 * 2**i for i in range(self.im_size.bit_length() - 3)]  # 8 .. im_size
            if self.topk_resolution not in allowed:
                raise ConfigError(f"topk_resolution must be one of {allowed} for im_size {self.im_size}, got {self.topk_resolution!r}")


def build_generator(settings: GanSettings) -> Generator:
    return Generator(
        ngf=settings.ngf,
        nz=settings.nz,
        im_size=settings.im_size,
        topk_fraction=settings.topk_fraction,
        topk_resolution=settings.topk_resolution,
        noise_injection=settings.noise_injection,
    )


def find_images(image_dir: str | Path) -> list[Path]:
    """PNG and JPEG files under ``image_dir`` (recursively), sorted; InputDataError if none."""
    root = Path(image_dir)
    if not root.is_dir():
        raise InputDataError(f"image folder not found: {root}")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise InputDataError(f"no PNG or JPEG images under {root}")
    return paths


def square_image(path: str | Path, size: int, resize: str = "center_crop") -> Image.Image:
    """RGB image of ``size`` x ``size``: shorter side scaled then centre-cropped, or stretched."""
    if resize not in RESIZE_MODES:
        raise ConfigError(f"resize must be one of {RESIZE_MODES}, got {resize!r}")
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except OSError as error:
        raise InputDataError(f"cannot read image {path}: {error}") from None
    if resize == "stretch":
        return image.resize((size, size), Image.Resampling.BICUBIC)
    width, height = image.size
    scale = size / min(width, height)
    scaled = image.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.Resampling.BICUBIC)
    left = (scaled.width - size) // 2
    top = (scaled.height - size) // 2
    return scaled.crop((left, top, left + size, top + size))


def load_training_images(image_dir: str | Path, size: int, resize: str = "center_crop") -> Tensor:
    """All images under ``image_dir`` as one uint8 ``(N, 3, size, size)`` tensor (few-shot sets are small)."""
    arrays = [np.asarray(square_image(p, size, resize)) for p in find_images(image_dir)]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


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


def _reconstruction_loss(reconstructions: tuple[Tensor, Tensor, Tensor], real: Tensor, part: int, kind: str) -> Tensor:
    rec_big, rec_small, rec_part = reconstructions
    whole = F.interpolate(real, size=SMALL_SIZE)
    quadrant = F.interpolate(crop_quadrant(real, part), size=SMALL_SIZE)
    loss = F.l1_loss if kind == "l1" else F.mse_loss
    total = real.new_zeros(())
    for rec, target in ((rec_big, whole), (rec_small, whole), (rec_part, quadrant)):
        total = total + loss(rec, target, reduction="none").flatten(1).mean(1).sum()
    return total


def _train_step(
    generator: Generator,
    discriminator: Discriminator,
    optimizer_g: torch.optim.Optimizer,
    optimizer_d: torch.optim.Optimizer,
    real: Tensor,
    settings: GanSettings,
) -> dict[str, float]:
    """One FastGAN iteration: a discriminator step, then a generator step."""
    noise = torch.randn(real.shape[0], settings.nz).to(real.device)
    fakes = generator(noise)
    real = diff_augment(real, settings.policy)
    fakes = [diff_augment(fake, settings.policy) for fake in fakes]

    optimizer_d.zero_grad(set_to_none=True)
    logits_real, reconstructions, part = discriminator(real, "real")
    loss_real = F.relu(torch.rand_like(logits_real) * 0.2 + 0.8 - logits_real).mean()
    recon = _reconstruction_loss(reconstructions, real, part, settings.recon_loss)
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
) -> dict[str, Any]:
    """Train, then write ``generator_ema.pt`` (state dict + settings) and ``losses.csv``.

    With ``mask_latents > 0`` and a Top-K layer in the generator, the Top-K masks of that
    many fixed latent codes (channels ``mask_channels``) are recorded at iteration 0 and at
    every checkpoint into ``masks.pt`` (the GAN's mask dynamics, Figure 8).

    Resumes from ``out_dir/checkpoint.pt`` when it exists and was written with the same
    settings; a checkpoint of other settings is an InputDataError (delete it to restart).
    Returns a summary: settings, iterations, the last losses row, mean images/s.
    """
    out_dir = Path(out_dir)
    images = load_training_images(image_dir, settings.im_size, settings.resize)
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    seed_everything(settings.seed)
    generator = build_generator(settings).to(dev)
    discriminator = Discriminator(ndf=settings.ndf, im_size=settings.im_size).to(dev)
    generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)
    betas = (settings.beta1, settings.beta2)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=settings.lr, betas=betas)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=settings.lr, betas=betas)

    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT
    start, rows, window = 0, [], _new_window()
    state = load_checkpoint(checkpoint_path, map_location=dev)
    if state is not None:
        if state["settings"] != dataclasses.asdict(settings):
            raise InputDataError(f"checkpoint {checkpoint_path} was written with other settings; delete it to start over")
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        generator_ema.load_state_dict(state["generator_ema"])
        optimizer_g.load_state_dict(state["optimizer_g"])
        optimizer_d.load_state_dict(state["optimizer_d"])
        restore_rng_states(state["rng"])
        start, rows, window = state["iteration"], state["losses"], state["window"]
        logger.info("resuming from %s at iteration %d", checkpoint_path, start)
    else:
        logger.info("starting at iteration 0 (no checkpoint at %s)", checkpoint_path)

    recorder = _mask_recorder(generator, settings, mask_latents, mask_channels)
    if recorder is not None:
        recorder.masks = dict(state.get("masks", {})) if state is not None else {}
        if start == 0:
            recorder.record(0)
    generator.train()
    discriminator.train()
    bar = tqdm(range(start, settings.iterations), initial=start, total=settings.iterations, desc="FastGAN", disable=None if progress else True)
    for iteration in bar:
        if iteration % settings.checkpoint_every == 0:
            seed_everything(_block_seed(settings.seed, iteration))
        started = time.perf_counter()
        real = _real_batch(images, settings, iteration).to(dev, non_blocking=True)
        losses = _train_step(generator, discriminator, optimizer_g, optimizer_d, real, settings)
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
        done = iteration + 1
        if done % settings.log_every == 0 or done == settings.iterations:
            count = window["count"]
            rows.append({
                "iteration": done,
                "loss_d": window["loss_d"] / count,
                "loss_g": window["loss_g"] / count,
                "recon": window["recon"] / count,
                "images_per_s": window["images"] / max(window["seconds"], 1e-9),
            })
            window = _new_window()
            bar.set_postfix(loss_d=f"{rows[-1]['loss_d']:.3f}", loss_g=f"{rows[-1]['loss_g']:.3f}")
        if settings.snapshot_every and done % settings.snapshot_every == 0:
            _save_generator(out_dir / SNAPSHOTS / f"generator_ema_{done:07d}.pt", generator_ema, settings)
        if done % settings.checkpoint_every == 0 or done == settings.iterations:
            if recorder is not None:
                recorder.record(done)
            save_checkpoint(
                {
                    "settings": dataclasses.asdict(settings),
                    "iteration": done,
                    "generator": generator.state_dict(),
                    "discriminator": discriminator.state_dict(),
                    "generator_ema": generator_ema.state_dict(),
                    "optimizer_g": optimizer_g.state_dict(),
                    "optimizer_d": optimizer_d.state_dict(),
                    "rng": rng_states(),
                    "losses": rows,
                    "window": window,
                    "masks": recorder.masks if recorder is not None else {},
                },
                checkpoint_path,
            )
    bar.close()

    if recorder is not None:
        recorder.save(out_dir / "masks.pt")
    _save_generator(out_dir / GENERATOR_EMA, generator_ema, settings)
    with atomic_file(out_dir / LOSSES) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOSS_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    return {
        "settings": dataclasses.asdict(settings),
        "iterations": settings.iterations,
        "images": len(images),
        "final": rows[-1] if rows else None,
        "mean_images_per_s": sum(r["images_per_s"] for r in rows) / len(rows) if rows else None,
    }


def _mask_recorder(generator: nn.Module, settings: GanSettings, count: int, channels: tuple[int, ...]):
    """A recorder of the generator's Top-K layer on fixed latent codes, or None."""
    from topkshape.models import topk_layers
    from topkshape.texture.figures import MaskRecorder

    layers = topk_layers(generator)
    if count <= 0 or not layers:
        return None
    latents = torch.randn(count, settings.nz, generator=torch.Generator().manual_seed(settings.seed + 7919))
    return MaskRecorder(generator, next(iter(layers)), latents, list(channels))


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """The EMA generator of a ``generator_ema.pt`` (or snapshot), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"generator not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=False)
    try:
        settings = GanSettings(**state["settings"])
        generator = build_generator(settings)
        generator.load_state_dict(state["generator"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise InputDataError(f"{path} is not a generator_ema.pt written by train_fastgan: {error}") from None
    return generator.to(device).eval()


def generate_samples(
    generator_or_path: nn.Module | str | Path,
    n: int,
    out_dir: str | Path,
    *,
    seed: int = 0,
    batch_size: int = 50,
    device: str | None = None,
) -> Path:
    """Write ``n`` generated images as ``00000.png`` ... (uint8 RGB at the generator's size).

    The latent codes are drawn on the CPU from ``seed`` (device-independent); the
    generator runs in eval mode. With noise injection on, its noise is drawn per batch,
    so the images depend on ``batch_size`` too. The folder appears complete or not at all.
    """
    if n < 1 or batch_size < 1:
        raise ConfigError(f"n and batch_size must be positive, got n={n}, batch_size={batch_size}")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if isinstance(generator_or_path, nn.Module):
        generator = generator_or_path
    else:
        generator = load_generator(generator_or_path)
    was_training = generator.training
    original_device = next(generator.parameters()).device
    generator.to(dev).eval()
    devices = [dev] if dev.type == "cuda" else []
    try:
        with atomic_directory(out_dir) as tmp, torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            latent = torch.Generator().manual_seed(seed)
            for start in range(0, n, batch_size):
                count = min(batch_size, n - start)
                z = torch.randn(count, generator.nz, generator=latent).to(dev)
                images = generator(z)[0]
                pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
                for offset, array in enumerate(pixels):
                    Image.fromarray(array).save(tmp / f"{start + offset:05d}.png")
    finally:
        generator.to(original_device).train(was_training)
    return Path(out_dir)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m topkshape.gan.train IMAGES OUT [--iterations ...]``."""
    parser = argparse.ArgumentParser(description="Train FastGAN (optionally with Top-K), resumable.")
    parser.add_argument("image_dir")
    parser.add_argument("out_dir")
    defaults = GanSettings()
    for field in dataclasses.fields(GanSettings):
        default = getattr(defaults, field.name)
        flag = f"--{field.name.replace('_', '-')}"
        if field.name == "topk_fraction":
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
    settings = GanSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(GanSettings)})
    train_fastgan(args.image_dir, args.out_dir, settings, device=args.device, progress=not args.no_progress, threads=args.threads)


if __name__ == "__main__":
    main()
