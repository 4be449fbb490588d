"""Gatys texture synthesis with and without Top-K responses, and activation reconstruction.

Paper Sec. 3.2 (Figure 2): an image is optimised with L-BFGS so its Gram matrices match
the target's at every tapped layer. "S w/o Top-K" zeroes each channel's spatial Top-K
responses before the Gram matrix, for target and synthesis alike, so only the weak
responses are matched. Sec. 3.3 (Figure 3) matches masked activations directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from topkshape.ops import check_fraction, spatial_topk, topk_mask
from topkshape.texture.features import FeatureTaps, imagenet_normalize

Normalize = Callable[[Tensor], Tensor]
Mask = Literal["topk", "non_topk", "identity"]
_MASK_CHOICES = ("topk", "non_topk", "identity")


def gram_matrix(feat: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C, C) Gram matrix ``F F^T / (C H W)`` (Gatys et al. 2015, Eq. 3).

    Dividing by the map size makes layers of different widths and resolutions comparable.
    """
    if feat.dim() != 4:
        raise ValueError(f"gram_matrix expects a (N, C, H, W) feature map, got shape {tuple(feat.shape)}")
    n, c, h, w = feat.shape
    flat = feat.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def zero_topk(feat: Tensor, fraction: float) -> Tensor:
    """``feat`` with each channel's spatial Top-K responses zeroed: "ZeroOutInternalTopK".

    Equal to ``feat * ~topk_mask(feat, fraction)``; the gradient flows through the kept
    (non-Top-K) entries only.
    """
    return spatial_topk(feat, fraction, keep="non_topk")


def _ablate(feat: Tensor, remove_topk: bool, fraction: float) -> Tensor:
    return zero_topk(feat, fraction) if remove_topk else feat


def _check_image(image: Tensor) -> None:
    if not isinstance(image, Tensor) or image.dim() != 4 or image.shape[:2] != (1, 3):
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"expected one RGB image of shape (1, 3, H, W) in [0, 1], got {shape}")


def _target_grams(
    taps: FeatureTaps, image: Tensor, remove_topk: bool, fraction: float, normalize: Normalize
) -> dict[str, Tensor]:
    with torch.no_grad():
        return {name: gram_matrix(_ablate(f, remove_topk, fraction)) for name, f in taps(normalize(image)).items()}


def _gram_distance(feats: dict[str, Tensor], grams: dict[str, Tensor], remove_topk: bool, fraction: float) -> Tensor:
    """Sum over layers of the MSE between Gram matrices (the synthesis objective)."""
    losses = [F.mse_loss(gram_matrix(_ablate(f, remove_topk, fraction)), grams[name]) for name, f in feats.items()]
    return torch.stack(losses).sum()


def _activation_distance(feats: dict[str, Tensor], goals: dict[str, Tensor]) -> Tensor:
    """Sum over layers of the MSE between activations and masked targets (Sec. 3.3)."""
    return torch.stack([F.mse_loss(f, goals[name]) for name, f in feats.items()]).sum()


def gram_loss(
    taps: FeatureTaps,
    a: Tensor,
    b: Tensor,
    remove_topk: bool = False,
    topk_fraction: float = 0.05,
    normalize: Normalize = imagenet_normalize,
) -> float:
    """Gram-matrix distance between images ``a`` and ``b`` (the objective of ``synthesize_texture``).

    With ``remove_topk=False`` it scores any result against the target on all responses,
    which is how Figure 2's two syntheses are compared on equal terms.
    """
    fraction = check_fraction(topk_fraction)
    grams = _target_grams(taps, b, remove_topk, fraction, normalize)
    with torch.no_grad():
        return float(_gram_distance(taps(normalize(a)), grams, remove_topk, fraction))


def _optimise_image(
    taps: FeatureTaps,
    target: Tensor,
    objective: Callable[[dict[str, Tensor]], Tensor],
    *,
    steps: int,
    lr: float,
    seed: int,
    normalize: Normalize,
    progress: bool,
    desc: str,
) -> tuple[Tensor, list[float]]:
    """L-BFGS on an image from seeded uniform noise, one L-BFGS iteration per step.

    L-BFGS's tolerances are absolute (it stops when ``g . d > -1e-9`` and drops curvature
    pairs with ``y . s < 1e-10``), and Gram distances of normalised features are tiny, so it
    minimises ``objective / objective(initial noise)``; the history reports the raw
    objective, evaluated before each step's update.
    """
    if steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(target.shape, generator=generator, dtype=target.dtype).to(target.device)
    image.requires_grad_(True)
    with torch.no_grad():
        scale = float(objective(taps(normalize(image))))
    scale = scale if scale > 0 else 1.0
    # No early exit on small gradients (normalised feature statistics give tiny pixel gradients),
    # and a strong-Wolfe line search of up to 10 evaluations per step: a fixed step of lr 1.0
    # diverged on some objectives, and a one-evaluation search stalled on others.
    optimizer = torch.optim.LBFGS([image], lr=lr, max_iter=1, max_eval=10, tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    history: list[float] = []

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = objective(taps(normalize(image))) / scale
        loss.backward()
        return loss

    for _ in tqdm(range(steps), desc=desc, disable=None if progress else True):
        history.append(float(optimizer.step(closure).detach()) * scale)
        with torch.no_grad():
            image.clamp_(0.0, 1.0)
    return image.detach().clone(), history


def synthesize_texture(
    taps: FeatureTaps,
    target: Tensor,
    *,
    remove_topk: bool,
    topk_fraction: float = 0.05,
    steps: int = 100,
    lr: float = 1.0,
    seed: int = 0,
    normalize: Normalize = imagenet_normalize,
    progress: bool = True,
) -> tuple[Tensor, list[float]]:
    """Gatys texture synthesis: "S w/ Top-K" (``remove_topk=False``) or "S w/o Top-K" (True).

    Paper Sec. 3.2: L-BFGS, learning rate 1.0, 100 steps. Returns the image in [0, 1]
    (shape of ``target``, (1, 3, H, W)) and the loss before each step.
    """
    _check_image(target)
    fraction = check_fraction(topk_fraction)
    target_grams = _target_grams(taps, target, remove_topk, fraction, normalize)
    return _optimise_image(
        taps,
        target,
        lambda feats: _gram_distance(feats, target_grams, remove_topk, fraction),
        steps=steps,
        lr=lr,
        seed=seed,
        normalize=normalize,
        progress=progress,
        desc="S w/o Top-K" if remove_topk else "S w/ Top-K",
    )


def masked_target(feat: Tensor, mask: Mask, topk_fraction: float) -> Tensor:
    """``Mask_i * X_i(T)`` of Sec. 3.3: the target's Top-K responses, the rest, or all."""
    if mask == "identity":
        return feat
    keep = topk_mask(feat, topk_fraction)
    return feat * (keep if mask == "topk" else ~keep)


def reconstruct(
    taps: FeatureTaps,
    target: Tensor,
    *,
    mask: Mask,
    topk_fraction: float = 0.05,
    steps: int = 100,
    lr: float = 1.0,
    seed: int = 0,
    normalize: Normalize = imagenet_normalize,
    progress: bool = True,
) -> tuple[Tensor, list[float]]:
    """Optimise an image whose activations match ``Mask_i * X_i(T)`` at every tapped layer.

    Paper Sec. 3.3 (Figure 3), with ``mask`` one of "topk", "non_topk" (its complement)
    or "identity" (all responses). The objective is the sum over layers of the MSE.
    """
    if mask not in _MASK_CHOICES:
        raise ValueError(f"mask must be one of {_MASK_CHOICES}, got {mask!r}")
    _check_image(target)
    fraction = check_fraction(topk_fraction)
    with torch.no_grad():
        goals = {name: masked_target(f, mask, fraction) for name, f in taps(normalize(target)).items()}
    return _optimise_image(
        taps,
        target,
        lambda feats: _activation_distance(feats, goals),
        steps=steps,
        lr=lr,
        seed=seed,
        normalize=normalize,
        progress=progress,
        desc=f"reconstruct ({mask})",
    )
