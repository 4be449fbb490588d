"""Top-K on feature maps that are not ``(N, C, H, W)``: transformer tokens and channels-last maps.

The spatial layers of :mod:`topkshape.ops` select over the last two dimensions of an
``(N, C, H, W)`` map. A ViT block's output is ``(N, T, C)`` tokens and a Swin stage's is
``(N, H, W, C)``, so :class:`LayoutTopK` moves the selected axis into place, runs the
same layer (same K rule, same tie rules, same masks) and moves it back:

* ``tokens``: per sample and channel over the patch tokens only. The first ``prefix``
  tokens (class, register, distillation: timm's ``num_prefix_tokens``) pass unchanged,
  so K = max(1, int(fraction x patch tokens)); under ``ties="exact"`` the lowest token
  index is kept first, as the lowest spatial index is for maps.
* ``nhwc``: per sample and channel over ``H x W``, as for ``(N, C, H, W)``.

The wrapped layer stays a child (``.inner``), so :func:`topkshape.models.topk_layers`,
mask recording and tie counting see it, applied to the rearranged tensor.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

Layout = Literal["nchw", "nhwc", "tokens"]
LAYOUTS: tuple[str, ...] = ("nchw", "nhwc", "tokens")


class LayoutTopK(nn.Module):
    """A spatial Top-K layer (``inner``) applied to tokens or to a channels-last map."""

    def __init__(self, inner: nn.Module, layout: Layout, prefix: int = 0) -> None:
        super().__init__()
        if layout not in ("nhwc", "tokens"):
            raise ValueError(f"LayoutTopK is for 'nhwc' or 'tokens' outputs, got {layout!r}")
        if prefix < 0 or (prefix and layout != "tokens"):
            raise ValueError(f"prefix tokens ({prefix}) apply to the 'tokens' layout only, and cannot be negative")
        self.inner = inner
        self.layout: Layout = layout
        self.prefix = int(prefix)

    def forward(self, x: Tensor) -> Tensor:
        if self.layout == "nhwc":
            if x.dim() != 4:
                raise ValueError(f"channels-last Top-K expects (N, H, W, C), got shape {tuple(x.shape)}")
            return self.inner(x.permute(0, 3, 1, 2).contiguous()).permute(0, 2, 3, 1)
        if x.dim() != 3:
            raise ValueError(f"token Top-K expects (N, T, C), got shape {tuple(x.shape)}")
        if x.shape[1] <= self.prefix:
            raise ValueError(f"token Top-K: {x.shape[1]} tokens leave no patch token after {self.prefix} prefix tokens")
        patches = x[:, self.prefix :, :].transpose(1, 2).unsqueeze(-1).contiguous()  # (N, C, P, 1)
        selected = self.inner(patches).squeeze(-1).transpose(1, 2)
        if not self.prefix:
            return selected
        return torch.cat([x[:, : self.prefix, :], selected], dim=1)

    def extra_repr(self) -> str:
        return f"layout={self.layout!r}, prefix={self.prefix}"
