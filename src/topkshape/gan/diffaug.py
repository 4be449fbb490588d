"""Differentiable Augmentation (Zhao, Liu, Lin, Zhu, Han, NeurIPS 2020).

Follows the authors' public ``DiffAugment_pytorch.py`` (also FastGAN's ``diffaug.py``):

* ``color``: brightness ``x + (r - 0.5)``, saturation ``(x - mean_c) * 2r + mean_c``,
  contrast ``(x - mean) * (r + 0.5) + mean``, with ``r ~ U(0, 1)`` per image;
* ``translation``: shift by up to ``0.125`` of the size (rounded) in each direction,
  uncovered pixels become 0;
* ``cutout``: zero a square of half the size (rounded) centred at a random position,
  clipped at the border.

Every operation is differentiable in ``x``; random draws come from ``generator`` when
given (on its device), else from torch's global RNG on ``x``'s device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from topkshape.errors import ConfigError

TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _rand(shape: tuple[int, ...], x: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else x.device
    return torch.rand(shape, generator=generator, device=device).to(device=x.device, dtype=x.dtype)


def _randint(low: int, high: int, shape: tuple[int, ...], x: Tensor, generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else x.device
    return torch.randint(low, high, shape, generator=generator, device=device).to(x.device)


def rand_brightness(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    return x + (_rand((x.shape[0], 1, 1, 1), x, generator) - 0.5)


def rand_saturation(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand((x.shape[0], 1, 1, 1), x, generator) * 2) + mean


def rand_contrast(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand((x.shape[0], 1, 1, 1), x, generator) + 0.5) + mean


def rand_translation(x: Tensor, generator: torch.Generator | None = None, ratio: float = TRANSLATION_RATIO) -> Tensor:
    """``out[i, j] = x[i + dy, j + dx]`` where inside the image, else 0; ``|dy|, |dx| <= ratio * size``."""
    n, c, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = _randint(-max_dy, max_dy + 1, (n, 1), x, generator)
    dx = _randint(-max_dx, max_dx + 1, (n, 1), x, generator)
    rows = torch.arange(h, device=x.device) + dy  # (n, h) source row of each output row
    cols = torch.arange(w, device=x.device) + dx
    row_ok = (rows >= 0) & (rows < h)
    col_ok = (cols >= 0) & (cols < w)
    out = x.gather(2, rows.clamp(0, h - 1).view(n, 1, h, 1).expand(n, c, h, w))
    out = out.gather(3, cols.clamp(0, w - 1).view(n, 1, 1, w).expand(n, c, h, w))
    inside = (row_ok.view(n, 1, h, 1) & col_ok.view(n, 1, 1, w)).to(x.dtype)
    return out * inside


def rand_cutout(x: Tensor, generator: torch.Generator | None = None, ratio: float = CUTOUT_RATIO) -> Tensor:
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # The reference's centre range: [0, size + (1 - cutout % 2)).
    top = _randint(0, h + (1 - size_h % 2), (n, 1), x, generator) - size_h // 2
    left = _randint(0, w + (1 - size_w % 2), (n, 1), x, generator) - size_w // 2
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= top) & (rows < top + size_h)
    in_cols = (cols >= left) & (cols < left + size_w)
    cut = in_rows.view(n, 1, h, 1) & in_cols.view(n, 1, 1, w)
    return x * (~cut).to(x.dtype)


AUGMENTATIONS: dict[str, tuple[Callable[..., Tensor], ...]] = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}


def parse_policy(policy: str) -> list[str]:
    """The policy's augmentation names in order; ConfigError for an unknown one."""
    names = [name.strip() for name in policy.split(",") if name.strip()]
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(f"unknown DiffAugment policy {unknown}; choose from {sorted(AUGMENTATIONS)} (comma-separated)")
    return names


def diff_augment(x: Tensor, policy: str = "color,translation", generator: torch.Generator | None = None) -> Tensor:
    """Apply the comma-separated ``policy`` to a ``(N, C, H, W)`` batch; ``""`` returns ``x``."""
    for name in parse_policy(policy):
        for augment in AUGMENTATIONS[name]:
            x = augment(x, generator)
    return x
