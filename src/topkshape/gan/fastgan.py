"""FastGAN (Liu, Zhu, Song, Elgammal, ICLR 2021) with an optional spatial Top-K layer.

Layer sizes follow the public FastGAN code (odegeasslbc/FastGAN-pytorch ``models.py``)
as the paper's few-shot code adapts it (Crazy-Jack/nips2023_shape_vs_texture,
``few-shot-img-syn/TopKGen/models.py``); this is a re-implementation, not a copy:

* every convolution is spectrally normalised, initialised N(0, 0.02); BatchNorm
  weights N(1, 0.02), biases 0;
* generator: ``ConvTranspose(nz -> 2*nfc[4], 4x4) + BN + GLU`` to 4x4, then up-blocks
  (nearest x2, 3x3 conv, BN, GLU), the "comp" variant (two convs, each followed by
  noise injection) at 8, 32, 128 and 512 px; skip-layer excitation feat_4 -> feat_64,
  feat_8 -> feat_128, feat_16 -> feat_256, feat_32 -> feat_512; widths
  ``nfc[r] = ngf * {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}[r]``;
* the Top-K variant applies :class:`topkshape.ops.TopK` to the feature map of one
  resolution (``feat_32`` in the paper: 5% for jeep/fish/train, 15% for table), after
  its up-block (and after its excitation where one exists), as the paper code's
  ``sparse_layer(32, feat_32)`` does;
* the output convolutions end in tanh only at 1024 px, as in both references: at 256
  and 512 px (and at our smaller sizes) the images are unbounded, and sampling clamps
  them to [-1, 1];
* discriminator: a full-size path of residual down-blocks to 8x8 with excitation of
  every map by the one 8x smaller in resolution (256->32, 128->16, 64->8 at 256 px), a
  128 px path of plain down-blocks to 8x8, 5x5 patch logits from both, and three
  self-supervised decoders to 128 px (the 8x8 map of each path, and a random quadrant
  of the 16x16 map of the full-size path).

Deviations, each a choice where the reference has none or cannot run offline:

* Sizes below 256 px are supported by starting the down-path at the image's own
  resolution (the reference has 256, 512 and 1024 only); for ``im_size <= 128`` the
  generator stops at ``im_size`` and its second output is the main image resized to
  128 px exactly as the discriminator resizes a real image (nearest).
* ``noise_injection=False`` turns noise injection off: the paper's code has it disabled
  (its ``NoiseInjection.forward`` returns the input unchanged).
* ``small_size`` (64 or 128 px; FastGAN's is 128): the size of the generator's second output,
  the discriminator's small path (which ends at 8x8 in either case) and the decoders'
  reconstructions. A 64 px run at 128 px would upsample its own images to 128 only to
  compare them there; at 64 it costs about half (``gan.small_size`` in the config).
* Decoder widths scale with ``ndf`` (``ndf // 2`` channels at 128 px: 32 at the default
  ndf 64, as in the reference) so tiny test models stay tiny.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from topkshape.ops import TopK

GENERATOR_WIDTHS = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}
# Discriminator widths by the spatial size of the map (the reference keys them by 2x that).
DISCRIMINATOR_WIDTHS = {8: 8, 16: 4, 32: 2, 64: 1, 128: 0.5, 256: 0.25}
IMAGE_SIZES = (64, 128, 256, 512, 1024)
SMALL_SIZE = 128  # FastGAN's: the second generator output, the small path, the decoders' reconstructions
SMALL_SIZES = (64, 128)
_COMP_BLOCKS = (8, 32, 128, 512)  # up-blocks with two convs and noise injection


def check_image_size(im_size: int) -> int:
    if im_size not in IMAGE_SIZES:
        raise ValueError(f"im_size must be one of {IMAGE_SIZES}, got {im_size!r}")
    return im_size


def check_small_size(small_size: int) -> int:
    if small_size not in SMALL_SIZES:
        raise ValueError(f"small_size must be one of {SMALL_SIZES}, got {small_size!r}")
    return small_size


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, transpose: bool = False) -> nn.Module:
    layer_type = nn.ConvTranspose2d if transpose else nn.Conv2d
    layer = layer_type(cin, cout, kernel, stride, padding, bias=False)
    nn.init.normal_(layer.weight, 0.0, 0.02)
    return spectral_norm(layer)


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    layer = nn.BatchNorm2d(channels)
    nn.init.normal_(layer.weight, 1.0, 0.02)
    nn.init.zeros_(layer.bias)
    return layer


def resize_for_discriminator(images: Tensor, size: int) -> Tensor:
    """The reference discriminator's resize (``F.interpolate``'s default, nearest)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=size)


class NoiseInjection(nn.Module):
    """``x + w * n`` with one learned scalar ``w`` (starts at 0) and ``n ~ N(0, 1)`` per pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, feat: Tensor) -> Tensor:
        noise = torch.randn(feat.shape[0], 1, feat.shape[2], feat.shape[3], device=feat.device, dtype=feat.dtype)
        return feat + self.weight * noise


class SkipLayerExcitation(nn.Module):
    """FastGAN's SLE: a small map gates the channels of a large one (Fig. 3 of Liu et al.)."""

    def __init__(self, ch_small: int, ch_big: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            _conv(ch_small, ch_big, 4),
            nn.SiLU(),
            _conv(ch_big, ch_big, 1),
            nn.Sigmoid(),
        )

    def forward(self, feat_small: Tensor, feat_big: Tensor) -> Tensor:
        return feat_big * self.main(feat_small)


def _up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv(cin, cout * 2, 3, 1, 1), _batch_norm(cout * 2), nn.GLU(dim=1))


def _up_block_comp(cin: int, cout: int, noise: bool) -> nn.Sequential:
    def maybe_noise() -> nn.Module:
        return NoiseInjection() if noise else nn.Identity()

    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        _conv(cin, cout * 2, 3, 1, 1), maybe_noise(), _batch_norm(cout * 2), nn.GLU(dim=1),
        _conv(cout, cout * 2, 3, 1, 1), maybe_noise(), _batch_norm(cout * 2), nn.GLU(dim=1),
    )


class Generator(nn.Module):
    """FastGAN generator; ``forward(z)`` returns ``[image at im_size, image at small_size]``.

    Images are meant to lie in [-1, 1], but only the 1024 px generator squashes them with
    tanh (FastGAN's choice, which the paper's code keeps): below that they are unbounded.
    """

    def __init__(
        self,
        ngf: int = 64,
        nz: int = 256,
        im_size: int = 256,
        topk_fraction: float | None = None,
        topk_resolution: int = 32,
        noise_injection: bool = True,
        topk_ties: str = "keep",
        small_size: int = SMALL_SIZE,
    ) -> None:
        super().__init__()
        self.im_size = check_image_size(im_size)
        self.small_size = check_small_size(small_size)
        self.nz = nz
        self.resolutions = [4 * 2**i for i in range(1, im_size.bit_length() - 2)]  # 8 .. im_size
        if topk_fraction is not None and topk_resolution not in self.resolutions:
            raise ValueError(f"topk_resolution must be one of {self.resolutions} for im_size {im_size}, got {topk_resolution!r}")
        nfc = {r: max(1, int(w * ngf)) for r, w in GENERATOR_WIDTHS.items()}
        self.init = nn.Sequential(_conv(nz, nfc[4] * 2, 4, transpose=True), _batch_norm(nfc[4] * 2), nn.GLU(dim=1))
        for r in self.resolutions:
            block = _up_block_comp(nfc[r // 2], nfc[r], noise_injection) if r in _COMP_BLOCKS else _up_block(nfc[r // 2], nfc[r])
            self.add_module(f"feat_{r}", block)
            if 64 <= r <= 512:
                self.add_module(f"se_{r}", SkipLayerExcitation(nfc[r // 16], nfc[r]))
        self.topk_resolution = topk_resolution if topk_fraction is not None else None
        self.topk = TopK(topk_fraction, ties=topk_ties) if topk_fraction is not None else None  # type: ignore[arg-type]
        self.output_tanh = im_size == 1024
        self.to_big = _conv(nfc[im_size], 3, 3, 1, 1)
        # Named for FastGAN's 128 px (its state-dict key), whatever small_size is.
        self.to_128 = _conv(nfc[small_size], 3, 1) if im_size > small_size else None

    def forward(self, z: Tensor) -> list[Tensor]:
        feats = {4: self.init(z.view(z.shape[0], -1, 1, 1))}
        for r in self.resolutions:
            feat = getattr(self, f"feat_{r}")(feats[r // 2])
            if 64 <= r <= 512:
                feat = getattr(self, f"se_{r}")(feats[r // 16], feat)
            if r == self.topk_resolution:
                feat = self.topk(feat)
            feats[r] = feat
        big = self.to_big(feats[self.im_size])
        if self.to_128 is None:
            return [big, resize_for_discriminator(big, self.small_size)]
        small = self.to_128(feats[self.small_size])
        if self.output_tanh:
            return [torch.tanh(big), torch.tanh(small)]
        return [big, small]


def _down_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, 4, 2, 1), _batch_norm(cout), nn.LeakyReLU(0.2))


class DownBlockComp(nn.Module):
    """Residual down-block: (two convs) and (avg-pool + 1x1 conv), averaged."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            _conv(cin, cout, 4, 2, 1), _batch_norm(cout), nn.LeakyReLU(0.2),
            _conv(cout, cout, 3, 1, 1), _batch_norm(cout), nn.LeakyReLU(0.2),
        )
        self.direct = nn.Sequential(nn.AvgPool2d(2, 2), _conv(cin, cout, 1), _batch_norm(cout), nn.LeakyReLU(0.2))

    def forward(self, feat: Tensor) -> Tensor:
        return (self.main(feat) + self.direct(feat)) / 2


class SimpleDecoder(nn.Module):
    """Decodes any map (average-pooled to 8x8) to an ``out_size`` image: up-blocks, conv, tanh.

    At FastGAN's 128 px four up-blocks (widths 4w, 2w, 2w, w at 16..128 px); at 64 px the
    first three of them.
    """

    def __init__(self, channels_in: int, width: int = 32, out_size: int = SMALL_SIZE) -> None:
        super().__init__()
        width = max(1, width)
        widths = [width * m for m in (4, 2, 2, 1)][: check_small_size(out_size).bit_length() - 4]
        blocks = [_up_block(cin, cout) for cin, cout in zip([channels_in, *widths[:-1]], widths)]
        self.main = nn.Sequential(nn.AdaptiveAvgPool2d(8), *blocks, _conv(widths[-1], 3, 3, 1, 1), nn.Tanh())

    def forward(self, feat: Tensor) -> Tensor:
        return self.main(feat)


def crop_quadrant(x: Tensor, part: int) -> Tensor:
    """Quadrant ``part`` of the last two dims: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right."""
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    row, col = divmod(part, 2)
    return x[..., row * h:(row + 1) * h, col * w:(col + 1) * w]


class Discriminator(nn.Module):
    """FastGAN discriminator with its three self-supervised reconstruction decoders.

    ``forward(imgs, label)`` takes a batch at any size (resized to ``im_size`` and ``small_size``)
    or the generator's ``[big, small]`` pair. It returns the concatenated patch logits of
    both paths; for ``label="real"`` also ``(rec_big, rec_small, rec_part)`` and the
    quadrant ``part`` (drawn from torch's global RNG when not given).
    """

    def __init__(self, ndf: int = 64, im_size: int = 256, small_size: int = SMALL_SIZE) -> None:
        super().__init__()
        self.im_size = check_image_size(im_size)
        self.small_size = check_small_size(small_size)
        top = min(im_size, 256)
        ch = {r: max(1, int(w * ndf)) for r, w in DISCRIMINATOR_WIDTHS.items()}
        if im_size == 1024:
            self.down_from_big = nn.Sequential(
                _conv(3, max(1, ndf // 8), 4, 2, 1), nn.LeakyReLU(0.2),
                _conv(max(1, ndf // 8), ch[256], 4, 2, 1), _batch_norm(ch[256]), nn.LeakyReLU(0.2),
            )
        elif im_size == 512:
            self.down_from_big = nn.Sequential(_conv(3, ch[256], 4, 2, 1), nn.LeakyReLU(0.2))
        else:
            self.down_from_big = nn.Sequential(_conv(3, ch[top], 3, 1, 1), nn.LeakyReLU(0.2))
        self.resolutions = [top >> i for i in range(top.bit_length() - 3)]  # top .. 8
        self.down = nn.ModuleDict({str(r // 2): DownBlockComp(ch[r], ch[r // 2]) for r in self.resolutions[:-1]})
        self.excite = nn.ModuleDict({str(r // 8): SkipLayerExcitation(ch[r], ch[r // 8]) for r in self.resolutions if r // 8 >= 8})
        self.rf_big = nn.Sequential(_conv(ch[8], ch[8] * 2, 1), _batch_norm(ch[8] * 2), nn.LeakyReLU(0.2), _conv(ch[8] * 2, 1, 4))
        # The small path's widths by output size (FastGAN's at 128 px: 64, 32, 16, 8 px); from 64 px the last three.
        small = [max(1, int(w * ndf)) for w in (0.5, 1, 2, 4)][4 - (small_size.bit_length() - 4):]
        downs = [_down_block(cin, cout) for cin, cout in zip(small[:-1], small[1:])]
        self.down_from_small = nn.Sequential(_conv(3, small[0], 4, 2, 1), nn.LeakyReLU(0.2), *downs)
        self.rf_small = _conv(small[-1], 1, 4)
        decoder_width = ndf // 2
        self.decoder_big = SimpleDecoder(ch[8], decoder_width, small_size)
        self.decoder_part = SimpleDecoder(ch[16], decoder_width, small_size)
        self.decoder_small = SimpleDecoder(small[-1], decoder_width, small_size)

    def forward(self, imgs: Tensor | list[Tensor], label: str = "fake", part: int | None = None):
        if label not in ("real", "fake"):
            raise ValueError(f"label must be 'real' or 'fake', got {label!r}")
        if isinstance(imgs, Tensor):
            imgs = [resize_for_discriminator(imgs, self.im_size), resize_for_discriminator(imgs, self.small_size)]
        feats = {self.resolutions[0]: self.down_from_big(imgs[0])}
        for r in self.resolutions[1:]:
            feat = self.down[str(r)](feats[r * 2])
            if str(r) in self.excite:
                feat = self.excite[str(r)](feats[r * 8], feat)
            feats[r] = feat
        feat_small = self.down_from_small(imgs[1])
        logits = torch.cat([self.rf_big(feats[8]).flatten(), self.rf_small(feat_small).flatten()])
        if label == "fake":
            return logits
        if part is None:
            part = int(torch.randint(0, 4, ()))
        reconstructions = (
            self.decoder_big(feats[8]),
            self.decoder_small(feat_small),
            self.decoder_part(crop_quadrant(feats[16], part)),
        )
        return logits, reconstructions, part
