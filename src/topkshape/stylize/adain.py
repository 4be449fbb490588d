"""AdaIN style transfer (Huang & Belongie, "Arbitrary Style Transfer in Real-time with
Adaptive Instance Normalization", ICCV 2017).

The layouts below match the public pytorch-AdaIN release files ``vgg_normalised.pth``
and ``decoder.pth`` child for child, so those files load with ``strict=True``: a file
that is not what we expect fails loudly instead of producing silently wrong images.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from topkshape.atomic import atomic_file
from topkshape.checkpoint import load_state_strict, load_torch_file
from topkshape.errors import ConfigError, InputDataError

# VGG-19 conv widths per block; a max-pool follows every block but the last.
_VGG19_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256, 256),
    (512, 512, 512, 512),
    (512, 512, 512, 512),
)
_FULL_VGG_CHILDREN = 53
_RELU4_1_CHILDREN = 31  # children [0, 31) end at relu4_1, the AdaIN feature layer


def _conv3x3(cin: int, cout: int) -> list[nn.Module]:
    # Reflection padding instead of zero padding avoids border artefacts (public release).
    return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, kernel_size=3)]


def _full_vgg_normalised() -> nn.Sequential:
    """All 53 children of ``vgg_normalised.pth`` (through relu5_4), so the file loads strictly."""
    # The leading 1x1 conv holds the Caffe preprocessing (RGB->BGR, mean, 0-255 scale),
    # which is why inputs stay in [0, 1].
    layers: list[nn.Module] = [nn.Conv2d(3, 3, kernel_size=1)]
    cin = 3
    for block_index, block in enumerate(_VGG19_BLOCKS):
        for cout in block:
            layers += [*_conv3x3(cin, cout), nn.ReLU()]
            cin = cout
        if block_index < len(_VGG19_BLOCKS) - 1:
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
    assert len(layers) == _FULL_VGG_CHILDREN
    return nn.Sequential(*layers)


def vgg_normalised_encoder() -> nn.Sequential:
    """The normalised VGG-19 up to relu4_1 (31 children), randomly initialised."""
    return nn.Sequential(*list(_full_vgg_normalised().children())[:_RELU4_1_CHILDREN])


def adain_decoder() -> nn.Sequential:
    """The decoder of ``decoder.pth``: the encoder mirrored, pools replaced by nearest x2 upsampling."""
    def up() -> nn.Module:
        return nn.Upsample(scale_factor=2, mode="nearest")

    layers: list[nn.Module] = [*_conv3x3(512, 256), nn.ReLU(), up()]
    for _ in range(3):
        layers += [*_conv3x3(256, 256), nn.ReLU()]
    layers += [*_conv3x3(256, 128), nn.ReLU(), up()]
    layers += [*_conv3x3(128, 128), nn.ReLU()]
    layers += [*_conv3x3(128, 64), nn.ReLU(), up()]
    layers += [*_conv3x3(64, 64), nn.ReLU()]
    layers += _conv3x3(64, 3)  # no ReLU: the output is clamped to [0, 1] instead
    return nn.Sequential(*layers)


def mean_std(feat: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-(N, C) mean and ``sqrt(var + eps)`` over H*W, each shaped (N, C, 1, 1).

    The variance is unbiased, as in the public release, so the statistics match its outputs.
    """
    if feat.dim() != 4:
        raise ValueError(f"expected a (N, C, H, W) feature map, got shape {tuple(feat.shape)}")
    n, c, h, w = feat.shape
    if h * w < 2:
        raise ValueError(
            f"feature map is {h}x{w}; AdaIN needs at least 2 positions per channel "
            "(images of at least 9 pixels per side)"
        )
    flat = feat.reshape(n, c, h * w)
    std = (flat.var(dim=2) + eps).sqrt()
    return flat.mean(dim=2).reshape(n, c, 1, 1), std.reshape(n, c, 1, 1)


def adaptive_instance_normalization(content_feat: Tensor, style_feat: Tensor) -> Tensor:
    """AdaIN (Eq. 8): ``sigma(y) * (x - mu(x)) / sigma(x) + mu(y)`` per channel.

    A style batch of 1 is broadcast over all content images.
    """
    if content_feat.shape[1] != style_feat.shape[1]:
        raise ValueError(
            f"content has {content_feat.shape[1]} channels but style has {style_feat.shape[1]}"
        )
    c_mean, c_std = mean_std(content_feat)
    s_mean, s_std = mean_std(style_feat)
    return (content_feat - c_mean) / c_std * s_std + s_mean


def _first_mismatch(module: nn.Module, state: dict) -> str | None:
    """Describe the first key that keeps ``state`` from loading strictly, in module order."""
    expected = module.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            return f"missing key {key!r}"
        got = state[key]
        if not isinstance(got, Tensor):
            return f"key {key!r} is a {type(got).__name__}, not a tensor"
        if got.shape != tensor.shape:
            return f"key {key!r} has shape {tuple(got.shape)}, expected {tuple(tensor.shape)}"
    for key in state:
        if key not in expected:
            return f"unexpected key {key!r}"
    return None


def _load_strict(module: nn.Module, path: str | os.PathLike, device: str | torch.device) -> None:
    path = Path(path)
    state = load_torch_file(path, "AdaIN weights file", device)  # weights-only: a shared file runs no code
    if not isinstance(state, dict):
        raise InputDataError(f"{path} holds a {type(state).__name__}, not a state dict")
    problem = _first_mismatch(module, state)
    if problem is not None:
        raise InputDataError(f"{path} does not fit the expected layout: {problem}")
    load_state_strict(module, state, str(path), "the expected layout")


class AdaINStylizer(nn.Module):
    """Encoder (normalised VGG-19 to relu4_1), AdaIN, decoder; inputs and outputs in [0, 1]."""

    def __init__(self, encoder: nn.Sequential | None = None, decoder: nn.Sequential | None = None) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else vgg_normalised_encoder()
        self.decoder = decoder if decoder is not None else adain_decoder()

    @classmethod
    def from_files(
        cls,
        encoder_path: str | os.PathLike,
        decoder_path: str | os.PathLike,
        device: str | torch.device = "cpu",
    ) -> AdaINStylizer:
        """Load ``vgg_normalised.pth`` and ``decoder.pth`` strictly; frozen and in eval mode."""
        full_encoder = _full_vgg_normalised()
        _load_strict(full_encoder, encoder_path, device)
        decoder = adain_decoder()
        _load_strict(decoder, decoder_path, device)
        encoder = nn.Sequential(*list(full_encoder.children())[:_RELU4_1_CHILDREN])
        model = cls(encoder, decoder).to(device).eval()
        model.requires_grad_(False)
        return model

    def forward(self, content: Tensor, style: Tensor, alpha: float = 1.0) -> Tensor:
        """Stylise ``content`` (N,3,H,W) with ``style`` (N or 1,3,h,w); ``alpha`` 0 keeps the content.

        Content and style may differ in size: AdaIN uses only the style's per-channel statistics.
        """
        for name, x in (("content", content), ("style", style)):
            if x.dim() != 4 or x.shape[1] != 3:
                raise ValueError(f"{name} must be (N, 3, H, W), got shape {tuple(x.shape)}")
        if style.shape[0] not in (1, content.shape[0]):
            raise ValueError(f"style batch must be 1 or {content.shape[0]}, got {style.shape[0]}")
        return self.transfer(content, self.encoder(style), alpha)

    def transfer(self, content: Tensor, style_features: Tensor, alpha: float = 1.0) -> Tensor:
        """Stylise with precomputed relu4_1 style features (a style encoded once serves many images).

        Blending as pytorch-AdaIN's ``style_transfer``: ``alpha * AdaIN(f(c), f(s)) + (1 - alpha) * f(c)``
        in feature space, then decoded and clamped to [0, 1].
        """
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
        if content.dim() != 4 or content.shape[1] != 3:
            raise ValueError(f"content must be (N, 3, H, W), got shape {tuple(content.shape)}")
        content_feat = self.encoder(content)
        target = adaptive_instance_normalization(content_feat, style_features)
        target = alpha * target + (1.0 - alpha) * content_feat
        return self.decoder(target).clamp(0.0, 1.0)


def save_random_adain_weights(
    encoder_path: str | os.PathLike, decoder_path: str | os.PathLike, seed: int = 0
) -> tuple[Path, Path]:
    """Write randomly initialised weights in the real files' layout.

    Lets tests and offline runs exercise loading and the full pipeline without the
    released weights; the global RNG state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder_state = _full_vgg_normalised().state_dict()
        decoder_state = adain_decoder().state_dict()
    paths = (Path(encoder_path), Path(decoder_path))
    for path, state in zip(paths, (encoder_state, decoder_state)):
        with atomic_file(path) as tmp:
            torch.save(state, tmp)
    return paths
