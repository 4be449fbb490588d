"""Frozen feature extractors for texture synthesis and reconstruction (paper Secs. 3.2, 3.3).

``FeatureTaps`` reads intermediate activations of any module with forward hooks, so
the same synthesis code runs on VGG, a Top-K ResNet or a tiny test network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models import vgg19

from topkshape.pretrained import with_weights

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

# Gatys et al.'s layer names -> indices into torchvision's ``vgg19().features``.
GATYS_VGG19_LAYERS: dict[str, str] = {
    "relu1_1": "1",
    "pool1": "4",
    "relu2_1": "6",
    "pool2": "9",
    "relu3_1": "11",
    "pool3": "18",
    "relu4_1": "20",
    "pool4": "27",
    "relu5_1": "29",
}


def imagenet_normalize(x: Tensor) -> Tensor:
    """Map a [0, 1] RGB batch to the ImageNet-normalised input torchvision weights expect."""
    mean = torch.tensor(_IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class FeatureTaps(nn.Module):
    """Run ``model`` and return ``{layer name: activation}`` for the requested submodules.

    The model is frozen (eval mode, no parameter gradients): the image is what gets
    optimised, and batch-norm statistics must not drift while it is. Hooks are attached
    only for the duration of a forward call, so the wrapped model is left unchanged.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str]) -> None:
        super().__init__()
        if isinstance(layers, str) or not layers:
            raise ValueError(f"layers must be a non-empty list of submodule names, got {layers!r}")
        known = [name for name, _ in model.named_modules() if name]
        missing = [name for name in layers if name not in known]
        if missing:
            preview = ", ".join(repr(name) for name in known[:20])
            more = f", ... ({len(known)} in all)" if len(known) > 20 else ""
            raise ValueError(
                f"unknown layer(s) {missing} in {type(model).__name__}; valid names include {preview}{more}"
            )
        self.model = model
        self.layers = list(dict.fromkeys(layers))
        model.eval()
        model.requires_grad_(False)

    def train(self, mode: bool = True) -> FeatureTaps:
        """Keep the wrapped model in eval mode whatever the caller asks (it is a fixed probe)."""
        self.training = mode
        self.model.eval()
        return self

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        captured: dict[str, Tensor] = {}
        handles = []
        for name in self.layers:
            def hook(_module: nn.Module, _inputs: object, output: Tensor, name: str = name) -> None:
                # Clone: a later in-place op (ReLU(inplace=True)) would overwrite the tap.
                captured[name] = output.clone()

            handles.append(self.model.get_submodule(name).register_forward_hook(hook))
        try:
            self.model(x)
        finally:
            for handle in handles:
                handle.remove()
        missing = [name for name in self.layers if name not in captured]
        if missing:
            raise RuntimeError(f"layer(s) {missing} were not called in the forward pass of {type(self.model).__name__}")
        return {name: captured[name] for name in self.layers}


def gatys_vgg19(weights: object = None) -> tuple[nn.Sequential, dict[str, str]]:
    """torchvision's VGG-19 ``features`` with average pooling, and Gatys layer names.

    Gatys et al. (2015) replace max- by average pooling and use a VGG-19 whose weights are
    rescaled so every filter's mean ImageNet activation is 1. The ImageNet torchvision
    weights (``weights="DEFAULT"``) with average pools are the documented substitute;
    inputs must be ImageNet-normalised (``imagenet_normalize``). A state-dict file path loads that file. ``weights=None`` gives
    torchvision's random initialisation, drawn from the global torch generator.
    """
    if weights is None:
        features = _random_vgg19_features()
    else:
        features = with_weights(vgg19, weights).features
    for index, module in enumerate(features):
        if isinstance(module, nn.MaxPool2d):
            features[index] = nn.AvgPool2d(kernel_size=2, stride=2)
    return features, dict(GATYS_VGG19_LAYERS)


def _random_vgg19_features() -> nn.Sequential:
    """``vgg19().features`` with torchvision's initialisation scheme, without the classifier.

    The classifier holds 124M of VGG-19's 144M parameters; initialising it only to throw it
    away took 90% of the time. The convolutions get VGG's scheme (Kaiming normal, fan-out,
    ReLU gain; zero bias), drawn from the global generator.
    """
    with torch.device("meta"):
        features = vgg19().features
    features = features.to_empty(device="cpu")
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return features
