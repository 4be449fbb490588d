"""Gatys texture synthesis with and without Top-K responses, and activation reconstruction.

Paper Sec. 3.2 (Figure 2): an image is optimised with L-BFGS so its Gram matrices match
the target's at every tapped layer. "S w/o Top-K" zeroes each channel's spatial Top-K
responses before the Gram matrix, for target and synthesis alike, so only the weak
responses are matched. Sec. 3.3 (Figure 3) matches masked activations directly.

The optimisation follows the paper's code (``texture-synthesis-visualization/optimize.py``):
each step is one ``torch.optim.LBFGS.step`` of up to ``max_iter`` (20) iterations with a
strong-Wolfe line search and no early exit, and the pixels stay within the target's range
through a sigmoid (``bounds="sigmoid"``). Its loss is the plain sum over layers and Gram
entries of squared differences (``loss="sum"``); ``loss="mean"`` divides each layer's sum
by C^2 (the MSE), which weights wide layers less.
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
Loss = Literal["sum", "mean"]
Bounds = Literal["sigmoid", "clamp"]
_MASK_CHOICES = ("topk", "non_topk", "identity")
_LOSS_CHOICES = ("sum", "mean")
_BOUNDS_CHOICES = ("sigmoid", "clamp")


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


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _squared_distance(a: Tensor, b: Tensor, loss: Loss) -> Tensor:
    """``sum((a - b)^2)`` (the paper code's loss) or its mean over entries."""
    return F.mse_loss(a, b, reduction="sum" if loss == "sum" else "mean")


def _gram_distance(feats: dict[str, Tensor], grams: dict[str, Tensor], remove_topk: bool, fraction: float, loss: Loss) -> Tensor:
    """Sum over layers of the squared Gram-matrix differences (the synthesis objective)."""
    terms = [_squared_distance(gram_matrix(_ablate(f, remove_topk, fraction)), grams[name], loss) for name, f in feats.items()]
    return torch.stack(terms).sum()


def _activation_distance(feats: dict[str, Tensor], goals: dict[str, Tensor], loss: Loss) -> Tensor:
    """Sum over layers of the squared differences to the masked targets (Sec. 3.3)."""
    return torch.stack([_squared_distance(f, goals[name], loss) for name, f in feats.items()]).sum()


def gram_loss(
    taps: FeatureTaps,
    a: Tensor,
    b: Tensor,
    remove_topk: bool = False,
    topk_fraction: float = 0.05,
    normalize: Normalize = imagenet_normalize,
    loss: Loss = "sum",
) -> float:
    """Gram-matrix distance between images ``a`` and ``b`` (the objective of ``synthesize_texture``).

    With ``remove_topk=False`` it scores any result against the target on all responses,
    which is how Figure 2's two syntheses are compared on equal terms.
    """
    _check_choice("loss", loss, _LOSS_CHOICES)
    fraction = check_fraction(topk_fraction)
    grams = _target_grams(taps, b, remove_topk, fraction, normalize)
    with torch.no_grad():
        return float(_gram_distance(taps(normalize(a)), grams, remove_topk, fraction, loss))


def _pixel_map(target: Tensor, bounds: Bounds) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    """(parameters -> image, image -> parameters) for the chosen way of bounding pixels.

    "sigmoid" (the paper code): image = lo + (hi - lo) * sigmoid(z), with lo and hi the
    target's smallest and largest value, so L-BFGS runs unconstrained and its curvature
    pairs stay valid. "clamp": the parameters are the pixels, clamped to [0, 1] after
    each step.
    """
    if bounds == "clamp":
        return (lambda z: z), (lambda x: x.clone())
    lo, hi = float(target.min()), float(target.max())
    if hi - lo < 1e-6:
        raise ValueError("a constant target image has no range for the sigmoid bounds (use bounds='clamp')")
    span = hi - lo

    def inverse(x: Tensor) -> Tensor:
        return torch.logit(((x - lo) / span).clamp(1e-3, 1 - 1e-3))

    return (lambda z: lo + span * torch.sigmoid(z)), inverse


def _optimise_image(
    taps: FeatureTaps,
    target: Tensor,
    objective: Callable[[dict[str, Tensor]], Tensor],
    *,
    steps: int,
    lr: float,
    max_iter: int,
    bounds: Bounds,
    seed: int,
    normalize: Normalize,
    progress: bool,
    desc: str,
) -> tuple[Tensor, list[float]]:
    """L-BFGS on an image from seeded uniform noise; ``steps`` calls of ``LBFGS.step``.

    Each step runs up to ``max_iter`` L-BFGS iterations (the paper code: 20) with a
    strong-Wolfe line search and no early exit (tolerances 0: normalised feature
    statistics give tiny pixel gradients). The history holds the raw objective at the
    initial noise and after every step (``steps + 1`` values). L-BFGS minimises
    ``objective / objective(initial noise)``: the first step's length depends on the
    gradient's scale, and a common factor (such as the paper code's layer weight 1e9/4)
    then changes nothing.
    """
    if steps < 1 or max_iter < 1:
        raise ValueError(f"steps and max_iter must be positive integers, got {steps!r} and {max_iter!r}")
    _check_choice("bounds", bounds, _BOUNDS_CHOICES)
    to_image, to_params = _pixel_map(target, bounds)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.rand(target.shape, generator=generator, dtype=target.dtype).to(target.device)
    if bounds == "sigmoid":
        lo, hi = float(target.min()), float(target.max())
        noise = lo + (hi - lo) * noise
    params = to_params(noise).requires_grad_(True)

    def evaluate() -> Tensor:
        return objective(taps(normalize(to_image(params))))

    with torch.no_grad():
        initial = float(evaluate())
    scale = initial if initial > 0 else 1.0
    optimizer = torch.optim.LBFGS(
        [params], lr=lr, max_iter=max_iter, tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe"
    )
    history = [initial]

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = evaluate() / scale
        loss.backward()
        return loss

    for _ in tqdm(range(steps), desc=desc, disable=None if progress else True):
        optimizer.step(closure)
        with torch.no_grad():
            if bounds == "clamp":
                params.clamp_(0.0, 1.0)
            history.append(float(evaluate()))
    with torch.no_grad():
        return to_image(params).detach().clone(), history


def synthesize_texture(
    taps: FeatureTaps,
    target: Tensor,
    *,
    remove_topk: bool,
    topk_fraction: float = 0.05,
    steps: int = 100,
    lr: float = 1.0,
    max_iter: int = 20,
    loss: Loss = "sum",
    bounds: Bounds = "sigmoid",
    seed: int = 0,
    normalize: Normalize = imagenet_normalize,
    progress: bool = True,
) -> tuple[Tensor, list[float]]:
    """Gatys texture synthesis: "S w/ Top-K" (``remove_topk=False``) or "S w/o Top-K" (True).

    Paper code: L-BFGS, learning rate 1.0, 100 steps of up to 20 iterations, plain sum of
    squared Gram differences. Returns the image (shape of ``target``, (1, 3, H, W), in the
    target's range) and the loss at the start and after each step.
    """
    _check_image(target)
    _check_choice("loss", loss, _LOSS_CHOICES)
    fraction = check_fraction(topk_fraction)
    target_grams = _target_grams(taps, target, remove_topk, fraction, normalize)
    return _optimise_image(
        taps,
        target,
        lambda feats: _gram_distance(feats, target_grams, remove_topk, fraction, loss),
        steps=steps,
        lr=lr,
        max_iter=max_iter,
        bounds=bounds,
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
    steps: int = 1,
    lr: float = 10.0,
    max_iter: int = 20,
    loss: Loss = "sum",
    bounds: Bounds = "sigmoid",
    seed: int = 0,
    normalize: Normalize = imagenet_normalize,
    progress: bool = True,
) -> tuple[Tensor, list[float]]:
    """Optimise an image whose activations match ``Mask_i * X_i(T)`` at every tapped layer.

    Paper Sec. 3.3 (Figure 3), with ``mask`` one of "topk", "non_topk" (its complement)
    or "identity" (all responses). The objective is the sum over layers of the squared
    differences; the paper code (``topk-neurons-visualization-supp``) runs one step of up
    to 20 L-BFGS iterations at learning rate 10.
    """
    _check_choice("mask", mask, _MASK_CHOICES)
    _check_choice("loss", loss, _LOSS_CHOICES)
    _check_image(target)
    fraction = check_fraction(topk_fraction)
    with torch.no_grad():
        goals = {name: masked_target(f, mask, fraction) for name, f in taps(normalize(target)).items()}
    return _optimise_image(
        taps,
        target,
        lambda feats: _activation_distance(feats, goals, loss),
        steps=steps,
        lr=lr,
        max_iter=max_iter,
        bounds=bounds,
        seed=seed,
        normalize=normalize,
        progress=progress,
        desc=f"reconstruct ({mask})",
    )
