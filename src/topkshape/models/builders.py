"""Ready-made models with Top-K at the paper's positions, and a name registry for configs.

Positions follow the paper's code: AlexNet after each of its five conv stages
(torchvision ``features`` indices 2, 5, 7, 9, 12), VGG16 after each of its five
max-pools (4, 9, 16, 23, 30), ResNet-18 after ``layer2`` (20% in Table 1).
Builders take ``weights=`` as torchvision does, or a state-dict file path; weights load before surgery and
keep their parameter names. ``ties=`` (``"keep"``, the default, or ``"exact"``: exactly
K per channel as the paper code's ``torch.topk``) goes to every Top-K layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torchvision
from torch import nn

from topkshape.models.cifar_resnet import cifar_resnet18
from topkshape.models.surgery import Mode, insert_topk
from topkshape.ops import Ties, check_ties
from topkshape.pretrained import with_weights

ALEXNET_TOPK_POSITIONS = ("features.2", "features.5", "features.7", "features.9", "features.12")
VGG16_TOPK_POSITIONS = ("features.4", "features.9", "features.16", "features.23", "features.30")
RESNET18_TOPK_POSITIONS = ("layer2",)


def _with_topk(
    model: nn.Module, positions: tuple[str, ...], fraction: float | None, mode: Mode, ties: Ties
) -> nn.Module:
    check_ties(ties)  # also without Top-K: a typo must not pass silently
    if fraction is None:
        return model
    return insert_topk(model, list(positions), fraction=fraction, mode=mode, ties=ties)


def topk_alexnet(
    fraction: float | None = 0.1, *, weights: Any = None, mode: Mode = "topk", ties: Ties = "keep", **kwargs: Any
) -> nn.Module:
    """torchvision AlexNet with Top-K after each conv stage (``fraction=None``: none)."""
    model = with_weights(torchvision.models.alexnet, weights, **kwargs)
    return _with_topk(model, ALEXNET_TOPK_POSITIONS, fraction, mode, ties)


def topk_vgg16(
    fraction: float | None = 0.1, *, weights: Any = None, mode: Mode = "topk", ties: Ties = "keep", **kwargs: Any
) -> nn.Module:
    """torchvision VGG16 with Top-K after each max-pool (``fraction=None``: none)."""
    model = with_weights(torchvision.models.vgg16, weights, **kwargs)
    return _with_topk(model, VGG16_TOPK_POSITIONS, fraction, mode, ties)


def topk_resnet18(
    fraction: float | None = 0.2, *, weights: Any = None, mode: Mode = "topk", ties: Ties = "keep", **kwargs: Any
) -> nn.Module:
    """torchvision ResNet-18 with Top-K after ``layer2`` (``fraction=None``: none)."""
    model = with_weights(torchvision.models.resnet18, weights, **kwargs)
    return _with_topk(model, RESNET18_TOPK_POSITIONS, fraction, mode, ties)


def topk_resnet18_cifar(
    fraction: float | None = 0.2, *, weights: Any = None, mode: Mode = "topk", ties: Ties = "keep", **kwargs: Any
) -> nn.Module:
    """The paper code's CIFAR-style ResNet-18 with Top-K after ``layer2``.

    ``weights`` must be None: no public weights exist for this architecture.
    """
    if weights is not None:
        raise ValueError(f"resnet18_cifar has no pretrained weights; got weights={weights!r}")
    return _with_topk(cifar_resnet18(**kwargs), RESNET18_TOPK_POSITIONS, fraction, mode, ties)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "alexnet": topk_alexnet,
    "vgg16": topk_vgg16,
    "resnet18": topk_resnet18,
    "resnet18_cifar": topk_resnet18_cifar,
}


def build_model(
    arch: str,
    *,
    fraction: float | None = None,
    mode: Mode = "topk",
    ties: Ties = "keep",
    weights: Any = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered architecture by name, with Top-K at its paper positions or none.

    ``ties`` is the Top-K tie rule of every inserted layer (see :mod:`topkshape.ops`).
    """
    try:
        builder = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}") from None
    return builder(fraction, weights=weights, mode=mode, ties=ties, **kwargs)
