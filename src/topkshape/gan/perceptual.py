"""LPIPS with a VGG-16 backbone (Zhang et al., CVPR 2018): FastGAN's reconstruction loss for D.

FastGAN and the paper's code score the discriminator's decoded images against the real
ones with LPIPS v0.1 ("net-lin", VGG), inputs in [-1, 1], one distance per image, and sum
over the batch. Here the ``lpips`` package provides the network and its learned linear
layers (shipped inside the package, read with the weights-only loader); the VGG-16
backbone comes through torchvision's weights API (``VGG16_Weights.IMAGENET1K_V1``, the
same ImageNet weights the package would fetch), so an offline cluster pre-places
``vgg16-397923af.pth`` under ``$TORCH_HOME/hub/checkpoints/`` like any torchvision weights.
The network stays in eval mode (its dropout off, as in the reference's test-time setup)
and is frozen; gradients flow to the images only.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from topkshape.checkpoint import load_torch_file
from topkshape.errors import ConfigError

LPIPS_VERSION = "0.1"


def vgg16_weights():
    """The torchvision weights LPIPS's VGG-16 backbone uses (ImageNet, the package's choice)."""
    from torchvision.models import VGG16_Weights

    return VGG16_Weights.IMAGENET1K_V1


def vgg16_weights_file() -> Path:
    """Where torchvision looks for (and downloads) the backbone: ``$TORCH_HOME/hub/checkpoints/``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(vgg16_weights().url).name


def _backbone_state(path: str | Path | None = None) -> dict[str, Tensor]:
    """The VGG-16 backbone's state: a given file (the workflow's downloaded weights) or torchvision's cache."""
    if path is not None:
        from topkshape.pretrained import load_state

        return load_state(path, "LPIPS VGG-16 backbone weights")
    try:
        return vgg16_weights().get_state_dict(progress=False, check_hash=True, weights_only=True)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError) as error:  # offline, bad hash, unreadable: one line
        raise ConfigError(
            f"LPIPS needs torchvision's VGG-16 weights at {vgg16_weights_file()} "
            f"({type(error).__name__}: {str(error).strip()[:120]}); copy them there "
            "(or set TORCH_HOME), or use gan.recon_loss: l1"
        ) from None


class LpipsVgg(nn.Module):
    """``forward(a, b)``: the LPIPS distance of each pair, shape ``(N,)``; images in [-1, 1].

    ``backbone``: a VGG-16 state-dict file; None reads torchvision's cache (``$TORCH_HOME``).
    """

    def __init__(self, backbone: str | Path | None = None) -> None:
        super().__init__()
        try:
            import lpips
        except ImportError:
            raise ConfigError("recon_loss lpips needs the lpips package (pip install lpips), or use gan.recon_loss: l1") from None
        with warnings.catch_warnings():  # the package asks torchvision for an untrained VGG the old way
            warnings.simplefilter("ignore", UserWarning)
            self.net = lpips.LPIPS(net="vgg", version=LPIPS_VERSION, pretrained=False, pnet_rand=True, verbose=False)
        linear = load_torch_file(Path(lpips.__file__).parent / "weights" / f"v{LPIPS_VERSION}" / "vgg.pth", "LPIPS linear weights")
        expected = {key for key in self.net.state_dict() if key.startswith("lin") and not key.startswith("lins.")}  # lins aliases lin0..4
        if not isinstance(linear, dict) or set(linear) != expected:
            raise ConfigError(f"the lpips package's VGG linear weights do not fit its network (keys {sorted(linear)[:2] if isinstance(linear, dict) else type(linear)})")
        self.net.load_state_dict(linear, strict=False)
        self._load_backbone(_backbone_state(backbone))
        self.eval().requires_grad_(False)

    def _load_backbone(self, state: dict[str, Tensor]) -> None:
        # The package keeps torchvision's layer indices as child names in its five slices.
        for index in range(1, self.net.net.N_slices + 1):
            for name, module in getattr(self.net.net, f"slice{index}").named_children():
                keys = list(module.state_dict())
                try:
                    module.load_state_dict({key: state[f"features.{name}.{key}"] for key in keys})
                except (KeyError, RuntimeError) as error:
                    raise ConfigError(f"{vgg16_weights_file()} is not a VGG-16 state dict ({type(error).__name__}: {str(error)[:120]})") from None

    def train(self, mode: bool = True) -> LpipsVgg:
        return super().train(False)  # always the evaluation network, whatever its owner does

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.net(a, b).flatten()
