"""Reading a trained generator back and sampling images from it (for FID/KID and previews).

Two choices decide what FID sees, and both are settings (``gan.eval``):

* ``generator_mode``: ``"eval"`` runs the EMA generator with its BatchNorm running
  statistics (ours); ``"train"`` normalises each sampling batch by its own statistics,
  as the paper code's evaluator does (it never calls ``.eval()``; its batches are the
  training batch size, 8). Train mode also runs spectral norm's power iteration, as
  there; a copy of the generator runs, so its buffers are not changed.
* ``pixel_range``: ``"full"`` maps [-1, 1] to 0..255 (clamped, rounded). ``"half"`` is
  the paper evaluator's mapping: it shifts generated images to [0, 1] and then applies
  the [-1, 1] -> [0, 255] conversion again (``255 * (clamp(x, -1, 1) * 0.5 + 0.5)``,
  truncated to uint8), and applies the same conversion to the real images' [0, 1]
  tensors, so both land in 127..255; generated values below -1 (FastGAN's output has
  no tanh) reach down to -3 before they clip. :func:`real_pixels` is the real side.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from topkshape.atomic import atomic_directory
from topkshape.checkpoint import load_torch_file
from topkshape.errors import ConfigError, InputDataError
from topkshape.gan.fastgan import Generator
from topkshape.gan.settings import GanSettings, build_generator

GENERATOR_MODES = ("eval", "train")
PIXEL_RANGES = ("full", "half")
_HALF_RESIZE = 512  # the paper's evaluator resizes (nearest) to 512 px and back: a no-op at 256


def check_sampling(generator_mode: str, pixel_range: str) -> None:
    if generator_mode not in GENERATOR_MODES:
        raise ConfigError(f"generator_mode must be one of {GENERATOR_MODES}, got {generator_mode!r}")
    if pixel_range not in PIXEL_RANGES:
        raise ConfigError(f"pixel_range must be one of {PIXEL_RANGES}, got {pixel_range!r}")


def generated_pixels(images: Tensor, pixel_range: str = "full") -> Tensor:
    """Generator outputs ``(N, 3, H, W)`` (nominally [-1, 1]) as uint8 ``(N, 3, H, W)``; see the module doc."""
    if pixel_range == "full":
        return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    check_sampling("eval", pixel_range)
    size = images.shape[-2:]
    shifted = F.interpolate(images, _HALF_RESIZE).add(1).mul(0.5)
    shifted = F.interpolate(shifted, size)
    return (255 * (shifted.clamp(-1, 1) * 0.5 + 0.5)).to(torch.uint8)


def real_pixels(pixels: np.ndarray | Tensor, pixel_range: str = "full") -> np.ndarray:
    """Real uint8 pixels as the FID input of ``pixel_range``: unchanged for ``"full"``, 127..255 for ``"half"``."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        raise InputDataError(f"real_pixels takes uint8 pixels, got {array.dtype}")
    if pixel_range == "full":
        return array
    check_sampling("eval", pixel_range)
    unit = torch.from_numpy(array.copy()).float().div(255)  # ToTensor's float32 [0, 1]
    return (255 * (unit.clamp(-1, 1) * 0.5 + 0.5)).to(torch.uint8).numpy()


def map_real_folder(folder: str | Path, pixel_range: str) -> Path:
    """Rewrite the PNGs of a prepared real-image folder in ``pixel_range`` (a no-op for ``"full"``)."""
    check_sampling("eval", pixel_range)
    if pixel_range != "full":
        for path in sorted(Path(folder).glob("*.png")):
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            Image.fromarray(real_pixels(pixels, pixel_range)).save(path)
    return Path(folder)


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """The EMA generator of a ``generator_ema.pt`` (or snapshot), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"generator not found: {path}")
    state = load_torch_file(path, "generator")
    try:
        settings = GanSettings(**state["settings"])
        generator = build_generator(settings)
        generator.load_state_dict(state["generator"])
    except (KeyError, TypeError, RuntimeError, ConfigError) as error:
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
    generator_mode: str = "eval",
    pixel_range: str = "full",
) -> Path:
    """Write ``n`` generated images as ``00000.png`` ... (uint8 RGB at the generator's size).

    The latent codes are drawn on the CPU from ``seed`` (device-independent). In
    ``generator_mode="eval"`` the generator uses its running BatchNorm statistics; in
    ``"train"`` each batch of ``batch_size`` is normalised by its own statistics (the
    paper's evaluator, batch 8), so the images depend on ``batch_size``, as they also do
    with noise injection on. ``pixel_range``: see the module doc. The folder appears
    complete or not at all; the generator passed in is left as it was.
    """
    if n < 1 or batch_size < 1:
        raise ConfigError(f"n and batch_size must be positive, got n={n}, batch_size={batch_size}")
    check_sampling(generator_mode, pixel_range)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if isinstance(generator_or_path, nn.Module):
        generator = generator_or_path
    else:
        generator = load_generator(generator_or_path)
    if generator_mode == "train":  # batch statistics and power iterations must not touch the caller's buffers
        generator = copy.deepcopy(generator)
    was_training = generator.training
    original_device = next(generator.parameters()).device
    generator.to(dev).train(generator_mode == "train")
    devices = [dev] if dev.type == "cuda" else []
    try:
        with atomic_directory(out_dir) as tmp, torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            latent = torch.Generator().manual_seed(seed)
            for start in range(0, n, batch_size):
                count = min(batch_size, n - start)
                z = torch.randn(count, generator.nz, generator=latent).to(dev)
                images = generator(z)[0]
                pixels = generated_pixels(images, pixel_range).permute(0, 2, 3, 1).cpu().numpy()
                for offset, array in enumerate(pixels):
                    Image.fromarray(array).save(tmp / f"{start + offset:05d}.png")
    finally:
        generator.to(original_device).train(was_training)
    return Path(out_dir)
