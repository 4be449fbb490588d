"""What determines a FastGAN run, and the generator it builds: shared by training and sampling."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from topkshape.errors import ConfigError
from topkshape.gan.diffaug import parse_policy
from topkshape.gan.fastgan import IMAGE_SIZES, SMALL_SIZE, SMALL_SIZES, Generator
from topkshape.ops import check_fraction, check_ties
from topkshape.params import settings_from_params

RECON_LOSSES = ("l1", "mse", "lpips")
RESIZE_MODES = ("center_crop", "stretch")
RESAMPLE_MODES = ("bilinear", "bicubic")


@dataclass(frozen=True)
class RollbackSettings:
    """The paper code's rollback on stalled FID (``train.py`` of its TopKGen).

    After ``patience`` evaluations in a row without a new best FID, the run reloads the
    best evaluation's state (both networks, the EMA generator, both optimizers, and the
    iteration: training goes on from there) and adds uniform noise in ``[-eps, eps)`` to
    every parameter of the generator (``eps_g``, the run scripts' ``--eps_G 1e-4``) and of
    the discriminator (``eps_d``, 0 in the paper). ``max_rollbacks``: None is unbounded,
    as in the paper's code (a run ends only when its last evaluation does not roll back).
    """

    enabled: bool = False
    patience: int = 10
    eps_g: float = 1e-4
    eps_d: float = 0.0
    max_rollbacks: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"rollback.enabled must be true or false, got {self.enabled!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ConfigError(f"rollback.patience must be a positive integer, got {self.patience!r}")
        for name in ("eps_g", "eps_d"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"rollback.{name} must be a number >= 0, got {value!r}")
        if self.max_rollbacks is not None and (isinstance(self.max_rollbacks, bool) or not isinstance(self.max_rollbacks, int) or self.max_rollbacks < 0):
            raise ConfigError(f"rollback.max_rollbacks must be null (unbounded) or an integer >= 0, got {self.max_rollbacks!r}")


@dataclass(frozen=True)
class GanSettings:
    """Everything that determines a FastGAN run's result.

    ``resample``: the filter of that resize, ``"bilinear"`` (the paper code's torchvision
    ``Resize``) or ``"bicubic"``.
    ``small_size``: the generator's second output, the discriminator's small path and its
    decoders' reconstructions (FastGAN's 128 px; 64 halves a 64 px run's cost).
    ``resize``: ``"center_crop"`` (shorter side to ``im_size``, then the centre) or
    ``"stretch"`` (both sides to ``im_size``, the reference's ``Resize((s, s))``).
    ``noise_injection=False`` matches the paper's code, whose noise injection is a no-op.
    ``snapshot_every`` > 0 also keeps the EMA generator of every such iteration under
    ``snapshots/`` (the paper reports the best FID over the run, measured every 1,000).
    ``log_every``: iterations averaged into one row of ``losses.csv``.
    ``recon_loss``: the discriminator decoders' loss; ``"lpips"`` (VGG) is FastGAN's and the
    paper's, ``"l1"``/``"mse"`` (mean per image) need no pretrained weights.
    ``topk_ties``: the Top-K layer's tie rule (``"exact"``: exactly K, as the paper's ``torch.topk``).
    ``eval_every``: how often ``train_fastgan``'s ``evaluate`` callback (FID), when given, scores
    the EMA generator (the paper code: every 1,000 iterations); ``rollback`` acts on those scores.
    """

    im_size: int = 256
    small_size: int = SMALL_SIZE
    nz: int = 256
    ngf: int = 64
    ndf: int = 64
    batch_size: int = 8
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = 0.999
    iterations: int = 100_000  # the paper's run scripts (--iter 100000); FastGAN's own default is 50,000
    policy: str = "color,translation"
    topk_fraction: float | None = None
    topk_resolution: int = 32
    topk_ties: str = "keep"
    noise_injection: bool = True
    recon_loss: str = "l1"
    resize: str = "center_crop"
    resample: str = "bicubic"
    checkpoint_every: int = 1000
    snapshot_every: int = 0
    log_every: int = 100
    eval_every: int = 1000
    rollback: RollbackSettings = dataclasses.field(default_factory=RollbackSettings)
    seed: int = 0

    @classmethod
    def from_params(cls, params: dict[str, Any], **overrides: Any) -> GanSettings:
        """Settings from the workflow's ``gan`` params plus per-job values (seed, Top-K fraction)."""
        return settings_from_params(cls, params, **overrides)

    def __post_init__(self) -> None:
        if isinstance(self.rollback, dict):  # from a config section or a saved run's settings
            try:
                object.__setattr__(self, "rollback", RollbackSettings(**self.rollback))
            except TypeError as error:
                raise ConfigError(f"rollback: {error}") from None
        if not isinstance(self.rollback, RollbackSettings):
            raise ConfigError(f"rollback must be a mapping of {[f.name for f in dataclasses.fields(RollbackSettings)]}, got {self.rollback!r}")
        if self.im_size not in IMAGE_SIZES:
            raise ConfigError(f"im_size must be one of {IMAGE_SIZES}, got {self.im_size!r}")
        if self.small_size not in SMALL_SIZES:
            raise ConfigError(f"small_size must be one of {SMALL_SIZES}, got {self.small_size!r}")
        for name in ("nz", "ngf", "ndf", "batch_size", "iterations", "checkpoint_every", "log_every", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.snapshot_every, bool) or not isinstance(self.snapshot_every, int) or self.snapshot_every < 0:
            raise ConfigError(f"snapshot_every must be 0 (off) or a positive integer, got {self.snapshot_every!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if self.recon_loss not in RECON_LOSSES:
            raise ConfigError(f"recon_loss must be one of {RECON_LOSSES}, got {self.recon_loss!r}")
        try:
            check_ties(self.topk_ties)
        except ConfigError as error:
            raise ConfigError(f"topk_ties: {error}") from None
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.resample not in RESAMPLE_MODES:
            raise ConfigError(f"resample must be one of {RESAMPLE_MODES}, got {self.resample!r}")
        parse_policy(self.policy)
        if self.topk_fraction is not None:
            try:
                check_fraction(self.topk_fraction)
            except ValueError as error:
                raise ConfigError(f"topk_fraction: {error}") from None
            allowed = [8 * 2**i for i in range(self.im_size.bit_length() - 3)]  # 8 .. im_size
            if self.topk_resolution not in allowed:
                raise ConfigError(f"topk_resolution must be one of {allowed} for im_size {self.im_size}, got {self.topk_resolution!r}")


def build_generator(settings: GanSettings) -> Generator:
    return Generator(
        ngf=settings.ngf,
        nz=settings.nz,
        im_size=settings.im_size,
        topk_fraction=settings.topk_fraction,
        topk_resolution=settings.topk_resolution,
        topk_ties=settings.topk_ties,
        noise_injection=settings.noise_injection,
        small_size=settings.small_size,
    )
