"""Spatial Top-K sparsity (Li, Wen, Li, Lee, NeurIPS 2023, Section 3.1).

For a feature map ``X`` of shape ``(N, C, H, W)`` the Top-K set of channel ``(n, c)``
holds the entries whose ``|X|`` is at least the K-th largest ``|X|`` over the ``H*W``
positions (Eq. 1), with ``K = max(1, floor(fraction * H * W))``, the same K as the
paper's code (``int(max(1, topk * h * w))``).

Two choices make the set well defined where the paper's code leaves it to
``torch.topk``'s tie-breaking:

* **Ties at the threshold are kept** (Eq. 1's ``>=``): a channel whose K-th and
  (K+1)-th largest ``|x|`` are equal keeps both, so it may keep more than K entries.
  For continuous activations ties have probability zero and the result equals the
  paper code's exactly-K selection.
* **A zero is never a Top-K response.** When a channel has fewer than K non-zero
  entries (common after ReLU), the paper code's choice of which zeros fill the K
  slots is arbitrary. We keep only the non-zero ones. Eq. 1's output is unchanged
  (those entries are zero either way); the mask, the gradient at those zeros and the
  mean of Eq. 2 become deterministic.

Backward saves one boolean mask (1 byte per element) and nothing else: the threshold
search runs without autograd, and the gradient is the incoming gradient where the
mask is set and exactly zero elsewhere.
"""

from __future__ import annotations

import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

Keep = Literal["topk", "non_topk"]
_KEEP_CHOICES = ("topk", "non_topk")


def check_fraction(fraction: object) -> float:
    """Return ``fraction`` as a float, or raise ValueError naming the bad value."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
        raise ValueError(f"Top-K fraction must be a number in (0, 1], got {fraction!r}")
    value = float(fraction)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"Top-K fraction must be in (0, 1], got {fraction!r}")
    return value


def _check_input(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"Top-K expects a 4-D (N, C, H, W) tensor, got {shape}")


def _check_keep(keep: str) -> None:
    if keep not in _KEEP_CHOICES:
        raise ValueError(f"keep must be one of {_KEEP_CHOICES}, got {keep!r}")


def topk_count(fraction: float, positions: int) -> int:
    """K for a map of ``positions`` spatial entries: ``max(1, floor(fraction * positions))``."""
    return max(1, int(check_fraction(fraction) * positions))


def topk_mask(x: Tensor, fraction: float) -> Tensor:
    """Boolean Top-K mask of ``x`` (Eq. 1's selection), same shape and layout as ``x``.

    True where ``|x|`` is non-zero and at least the K-th largest ``|x|`` of its
    sample and channel. Never tracks gradients.
    """
    _check_input(x)
    fraction = check_fraction(fraction)
    n, c, h, w = x.shape
    k = topk_count(fraction, h * w)
    with torch.no_grad():
        magnitude = x.detach().abs()
        if k >= h * w:
            return magnitude != 0
        threshold = kth_largest(magnitude.reshape(n * c, h * w), k).view(n, c, 1, 1)
        # Raising a zero threshold to the smallest positive value drops exact zeros
        # in the same comparison (see the module docstring).
        smallest = torch.nextafter(torch.zeros((), dtype=x.dtype, device=x.device), threshold.new_ones(()))
        return magnitude >= torch.maximum(threshold, smallest)


_NUMPY_SELECT_DTYPES = (torch.float16, torch.float32, torch.float64)
_PARALLEL_MIN_ELEMENTS = 1 << 16


def kth_largest(rows: Tensor, k: int) -> Tensor:
    """The k-th largest value of each row of a 2-D tensor (values only, no indices).

    On the CPU, numpy's introselect on the values is several times faster than
    ``torch.topk``, which selects (value, index) pairs; rows are split across
    ``torch.get_num_threads()`` threads (numpy releases the GIL). Elsewhere, and
    while ``torch.compile`` traces, this is ``topk(sorted=False)`` then ``min``.
    """
    length = rows.shape[1]
    if rows.device.type == "cpu" and rows.dtype in _NUMPY_SELECT_DTYPES and not torch.compiler.is_compiling():
        array = rows.contiguous().numpy()
        position = length - k
        threads = min(torch.get_num_threads(), rows.shape[0])
        if threads <= 1 or rows.numel() < _PARALLEL_MIN_ELEMENTS:
            return torch.from_numpy(np.partition(array, position, axis=1)[:, position])
        chunks = np.array_split(array, threads, axis=0)
        parts = _thread_pool(threads, os.getpid()).map(lambda a: np.partition(a, position, axis=1)[:, position], chunks)
        return torch.from_numpy(np.concatenate(list(parts)))
    return torch.topk(rows, k, dim=1, sorted=False).values.amin(dim=1)


@lru_cache(maxsize=4)
def _thread_pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """One pool per process: a forked DataLoader worker must not reuse its parent's."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"topk-select-{pid}")


class _MaskedIdentity(torch.autograd.Function):
    """``x`` where ``mask``, 0 elsewhere; the gradient passes only where ``mask``."""

    @staticmethod
    def forward(ctx, x: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(mask)
        return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (mask,) = ctx.saved_tensors
        zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
        return torch.where(mask, grad, zero), None


class _MaskedMean(torch.autograd.Function):
    """Eq. 2: every masked entry of a channel becomes the mean of the masked entries.

    ``out[p] = m[p] * sum_q m[q] x[q] / n`` with ``n = sum_q m[q]``, so
    ``d loss / d x[q] = m[q] * sum_p m[p] g[p] / n``: each kept entry receives the
    channel's average kept gradient. Saves the mask and the (N, C) counts only.
    """

    @staticmethod
    def forward(ctx, x: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        count = mask.sum(dim=(2, 3), keepdim=True).clamp_min(1)
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        # Accumulate in float32 at least: fp16 channel sums overflow easily.
        acc_dtype = torch.promote_types(x.dtype, torch.float32)
        total = torch.where(mask, x, zero).sum(dim=(2, 3), keepdim=True, dtype=acc_dtype)
        mean = (total / count).to(x.dtype)
        ctx.save_for_backward(mask, count)
        return torch.where(mask, mean, zero)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        mask, count = ctx.saved_tensors
        zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
        acc_dtype = torch.promote_types(grad.dtype, torch.float32)
        total = torch.where(mask, grad, zero).sum(dim=(2, 3), keepdim=True, dtype=acc_dtype)
        mean_grad = (total / count).to(grad.dtype)
        return torch.where(mask, mean_grad, zero), None


def spatial_topk(x: Tensor, fraction: float, keep: Keep = "topk") -> Tensor:
    """Eq. 1 (``keep="topk"``) or its complement (``keep="non_topk"``).

    ``non_topk`` keeps every entry outside the Top-K set: the paper's "revert"
    ablation. ``fraction == 1.0`` with ``keep="topk"`` returns ``x`` unchanged.
    """
    _check_input(x)
    _check_keep(keep)
    fraction = check_fraction(fraction)
    if fraction == 1.0 and keep == "topk":
        return x
    return _keep_masked(x, topk_mask(x, fraction), keep)


def _keep_masked(x: Tensor, mask: Tensor, keep: Keep) -> Tensor:
    return _MaskedIdentity.apply(x, ~mask if keep == "non_topk" else mask)


def spatial_topk_mean_replace(x: Tensor, fraction: float) -> Tensor:
    """Eq. 2: Top-K positions carry their channel's mean Top-K value, others 0."""
    _check_input(x)
    return _MaskedMean.apply(x, topk_mask(x, fraction))


class TopK(nn.Module):
    """Spatial Top-K layer (Eq. 1), or its complement with ``keep="non_topk"``.

    Set ``record_mask = True`` to keep the last boolean mask in ``last_mask``
    (the mask-dynamics figures read it); off by default to hold no memory.
    """

    def __init__(self, fraction: float, keep: Keep = "topk") -> None:
        super().__init__()
        _check_keep(keep)
        self.fraction = check_fraction(fraction)
        self.keep: Keep = keep
        self.record_mask = False
        self.last_mask: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.record_mask:
            return spatial_topk(x, self.fraction, self.keep)
        self.last_mask = topk_mask(x, self.fraction)
        if self.fraction == 1.0 and self.keep == "topk":
            return x  # the identity, as spatial_topk
        return _keep_masked(x, self.last_mask, self.keep)

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}, keep={self.keep!r}"


class TopKMeanReplace(nn.Module):
    """Top-K with mean replacement (Eq. 2): keeps where, not how much."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = check_fraction(fraction)
        self.record_mask = False
        self.last_mask: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.record_mask:
            return spatial_topk_mean_replace(x, self.fraction)
        self.last_mask = topk_mask(x, self.fraction)
        return _MaskedMean.apply(x, self.last_mask)

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}"
