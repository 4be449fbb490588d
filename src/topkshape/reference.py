"""The paper code's Top-K formulation, kept as a yardstick for tests and benchmarks.

Follows the published ``sparse_hw`` description: ``torch.topk`` indices of ``|x|``
scattered into a float mask, the input multiplied by it, and a per-call sparsity
count through ``torch.where``. Exactly K entries per channel, ties broken however
``torch.topk`` breaks them. Not used by the models: see :mod:`topkshape.ops`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def reference_topk(x: Tensor, fraction: float, revert: bool = False) -> tuple[Tensor, float]:
    """Return the paper-code Top-K output and the fraction of non-zero outputs."""
    n, c, h, w = x.shape
    if fraction == 1:
        return x, 1.0
    flat = x.reshape(n, c, h * w)
    keep = int(max(1, fraction * h * w))
    _, index = torch.topk(flat.abs(), keep, dim=2)
    mask = torch.zeros_like(flat).scatter_(2, index, 1)
    if revert:
        mask = torch.ones_like(flat) - mask
    sparse = mask * flat
    density = 1.0 - torch.where(sparse == 0.0)[0].shape[0] / (n * c * h * w)
    return sparse.view(n, c, h, w), density


def reference_topk_mean_replace(x: Tensor, fraction: float) -> Tensor:
    """Eq. 2 with the paper code's exactly-K selection and plain autograd."""
    n, c, h, w = x.shape
    flat = x.reshape(n, c, h * w)
    keep = int(max(1, fraction * h * w))
    _, index = torch.topk(flat.abs(), keep, dim=2)
    mask = torch.zeros_like(flat).scatter_(2, index, 1)
    mean = (mask * flat).sum(dim=2, keepdim=True) / keep
    return (mask * mean).view(n, c, h, w)
