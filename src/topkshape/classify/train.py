"""Train one Table 1 classifier: resumable, seeded, with per-epoch metrics.

Protocol of the paper's code (Section 4.3): SGD lr 0.1, momentum 0.9, weight decay
5e-4, batch 32, cosine annealing over the epochs, RandomResizedCrop + flip for
training, Resize + CenterCrop for evaluation, ImageNet normalisation; evaluated on the
clean and the stylized validation sets after every epoch.

Resuming: after every epoch a checkpoint (model, optimizer, scheduler, epoch, metrics,
RNG states) replaces the previous one atomically. Every random generator is re-seeded
from ``(seed, epoch)`` at the start of each epoch, so a job killed at any moment and
restarted repeats the interrupted epoch exactly and ends with the same weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from topkshape.checkpoint import (
    dataset_identity,
    finish_run,
    restore_rng_states,
    resumable_state,
    rng_states,
    save_checkpoint,
    seed_everything,
)
from topkshape.classify.data import (
    LabelledImageFolder,
    eval_transform,
    texture_targets,
    train_transform,
)
from topkshape.classify.evaluate import CUE_CONFLICT_SCORES, cue_conflict_scores, predict
from topkshape.data.synthetic import SHAPE_ONLY, TEXTURE_ONLY
from topkshape.errors import ConfigError, InputDataError
from topkshape.mask_recording import MaskRecorder
from topkshape.models import build_model, topk_layers
from topkshape.params import settings_from_params

logger = logging.getLogger(__name__)

VARIANT_MODES: dict[str, str | None] = {"baseline": None, "topk": "topk", "topk_mean_rpl": "mean_replace"}
# Arithmetic on a GPU: fp32 as the paper code, or bf16 autocast (faster; a bf16 map has many entries
# tied at the K-th |x|, which the tie rule then decides). The CPU always runs fp32.
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
CHECKPOINT = "checkpoint.pt"
PROGRESS_EVERY = 50  # steps between progress-bar updates (each one syncs with the device)


@dataclass(frozen=True)
class TrainSettings:
    """Everything that determines a training run's result."""

    arch: str = "resnet18_cifar"
    variant: str = "topk"
    topk_fraction: float = 0.2
    ties: str = "keep"
    compile: bool = False
    precision: str = "bf16"
    epochs: int = 50
    batch_size: int = 32
    lr: float = 0.1
    warmup_epochs: int = 0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    image_size: int = 224
    width: int = 64
    crop_scale: tuple[float, float] = (0.08, 1.0)
    seed: int = 0

    @classmethod
    def from_params(cls, params: dict[str, Any], *, variant: str, seed: int) -> TrainSettings:
        """Settings from the workflow's ``train`` params (unknown keys such as ``threads`` ignored)."""
        return settings_from_params(cls, params, variant=variant, seed=seed)

    def __post_init__(self) -> None:
        if self.variant not in VARIANT_MODES:
            raise ConfigError(f"variant must be one of {sorted(VARIANT_MODES)}, got {self.variant!r}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(f"train.warmup_epochs must be at least 0 and below train.epochs ({self.epochs}), got {self.warmup_epochs}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        low, high = (float(v) for v in self.crop_scale)  # a YAML list becomes a hashable pair
        if not 0 < low <= high <= 1:
            raise ConfigError(f"train.crop_scale must be [low, high] with 0 < low <= high <= 1, got {list(self.crop_scale)}")
        object.__setattr__(self, "crop_scale", (low, high))


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None: plain fp32; the CPU always)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision] if device.type == "cuda" else None


def build_classifier(settings: TrainSettings, num_classes: int) -> nn.Module:
    """The configured architecture with Top-K (or not) for the variant."""
    mode = VARIANT_MODES[settings.variant]
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    if settings.arch == "resnet18_cifar":
        kwargs.update(input_size=settings.image_size, width=settings.width)
    fraction = settings.topk_fraction if mode else None
    return build_model(settings.arch, fraction=fraction, mode=mode or "topk", ties=settings.ties, **kwargs)


def _warmed_step(optimizer: torch.optim.Optimizer, step: int, warmup_steps: int) -> None:
    """One optimizer step, at ``(step + 1) / warmup_steps`` of the scheduled learning rate during
    the linear warm-up. The schedule's own value is restored afterwards, so the cosine schedule
    (a recursive formula over the groups' lr) and its checkpoints are those of a run without
    warm-up, and ``warmup_steps == 0`` is exactly the plain step."""
    if step >= warmup_steps:
        optimizer.step()
        return
    scheduled = [group["lr"] for group in optimizer.param_groups]
    for group, lr in zip(optimizer.param_groups, scheduled):
        group["lr"] = lr * (step + 1) / warmup_steps
    optimizer.step()
    for group, lr in zip(optimizer.param_groups, scheduled):
        group["lr"] = lr


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def _loader(dataset, settings: TrainSettings, *, shuffle: bool, workers: int, epoch: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(_epoch_seed(settings.seed, epoch))
    return DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=shuffle,
        num_workers=workers,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )


DIAGNOSTIC_SPLITS = {"shape_only": SHAPE_ONLY, "texture_only": TEXTURE_ONLY}
"""Diagnostic validation splits of a subset folder (the generated data writes them; ImageNet has none)."""


def diagnostic_sets(subset: str | Path) -> dict[str, Path]:
    """The diagnostic validation sets that ``subset`` holds, by name."""
    return {name: Path(subset) / split for name, split in DIAGNOSTIC_SPLITS.items() if (Path(subset) / split).is_dir()}


def _check_dir(path: Path, what: str) -> None:
    if not path.is_dir():
        raise InputDataError(f"{what} not found: {path}")


def train_classifier(
    train_dir: str | Path,
    clean_dir: str | Path,
    stylized_dir: str | Path,
    out_dir: str | Path,
    settings: TrainSettings,
    *,
    workers: int = 0,
    threads: int | None = None,
    progress: bool = True,
    device: str | None = None,
    mask_images: int = 0,
    mask_channels: tuple[int, ...] = (0, 1, 2, 3),
    provenance: dict[str, Any] | None = None,
    diagnostic_dirs: dict[str, str | Path] | None = None,
    cache_images: bool = False,
    eval_every: int = 1,
) -> dict[str, Any]:
    """Train, evaluate every epoch, write ``model.pt``, ``metrics.csv``, ``summary.json``.

    ``eval_every``: the stylized and diagnostic sets are scored every that many epochs and at the
    last (NaN in ``metrics.csv`` between); the clean validation set every epoch.

    ``cache_images``: keep decoded training images and transformed evaluation images in memory
    (same results; for small generated sets, see :class:`LabelledImageFolder`).

    ``diagnostic_dirs`` (name -> ImageFolder, e.g. ``shape_only``): more validation sets, scored
    every epoch as ``<name>_acc`` (which cue the network has learned, one at a time).

    With ``mask_images > 0`` and a Top-K layer in the model, the Top-K masks of the first
    ``mask_images`` validation images at ``mask_channels`` are recorded before training
    and after every epoch into ``masks.pt`` (Figure 8's mask dynamics).

    Resumes from ``out_dir/checkpoint.pt`` only when it is an unfinished checkpoint of this
    very run: the same settings and the same data (class list and the data folders'
    identity). Any other checkpoint is ignored with a one-line log (an unreadable one is
    moved aside), and training starts from epoch 0. A finished run removes its checkpoint.
    """
    train_dir, clean_dir, stylized_dir, out_dir = map(Path, (train_dir, clean_dir, stylized_dir, out_dir))
    for path, what in ((train_dir, "training images"), (clean_dir, "validation images"), (stylized_dir, "stylized images")):
        _check_dir(path, what)
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    amp_dtype = autocast_dtype(settings.precision, dev)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        torch.use_deterministic_algorithms(True, warn_only=True)

    train_cache, eval_cache = ("decoded", "transformed") if cache_images else (None, None)
    train_set = LabelledImageFolder(train_dir, sorted(p.name for p in train_dir.iterdir() if p.is_dir()),
                                    train_transform(settings.image_size, settings.crop_scale), cache=train_cache)
    classes = train_set.classes
    clean_set = LabelledImageFolder(clean_dir, classes, eval_transform(settings.image_size), cache=eval_cache)
    stylized_set = LabelledImageFolder(stylized_dir, classes, eval_transform(settings.image_size), cache=eval_cache)
    textures = texture_targets(stylized_set, stylized_dir / "styles.csv") if (stylized_dir / "styles.csv").is_file() else None
    diagnostic_dirs = {name: Path(folder) for name, folder in (diagnostic_dirs or {}).items()}
    for name, folder in diagnostic_dirs.items():
        _check_dir(folder, f"{name} validation images")
    diagnostic_data = {name: LabelledImageFolder(folder, classes, eval_transform(settings.image_size), cache=eval_cache)
                       for name, folder in diagnostic_dirs.items()}

    seed_everything(settings.seed)
    model = build_classifier(settings, len(classes)).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    criterion = nn.CrossEntropyLoss()

    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT
    rows: list[dict[str, Any]] = []
    start_epoch = 0
    identity = {
        "settings": dataclasses.asdict(settings),
        "classes": list(classes),
        "data": dataset_identity(train_dir, clean_dir, stylized_dir, *diagnostic_dirs.values()),
        "mask_recording": {"images": mask_images, "channels": list(mask_channels)},
    }
    state = resumable_state(checkpoint_path, identity, map_location=dev)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng_states(state["rng"])
        rows = list(state["metrics"])
        start_epoch = state["epoch"] + 1
        logger.info("resuming from %s after epoch %d", checkpoint_path, state["epoch"])

    recorder = _mask_recorder(model, clean_set, mask_images, mask_channels)
    if recorder is not None:
        recorder.masks = dict(state.get("masks", {})) if state is not None else {}
        if start_epoch == 0:
            recorder.record(0)
    # torch.compile (train.compile) for the training steps only; the weights stay those of `model`.
    step_model = torch.compile(model) if settings.compile else model
    clean_loader = _loader(clean_set, settings, shuffle=False, workers=workers)
    stylized_loader = _loader(stylized_set, settings, shuffle=False, workers=workers)
    diagnostic_loaders = {name: _loader(dataset, settings, shuffle=False, workers=workers) for name, dataset in diagnostic_data.items()}
    for epoch in range(start_epoch, settings.epochs):
        seed_everything(_epoch_seed(settings.seed, epoch))
        loader = _loader(train_set, settings, shuffle=True, workers=workers, epoch=epoch)
        model.train()
        lr = optimizer.param_groups[0]["lr"]
        # Sums stay on the device: one host sync per epoch (and per progress update), not per step.
        loss_sum = torch.zeros((), device=dev, dtype=torch.float64)
        correct = torch.zeros((), device=dev, dtype=torch.int64)
        seen = 0
        started = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{settings.epochs}", disable=None if progress else True, leave=False)
        for step, (images, labels) in enumerate(bar):
            images, labels = images.to(dev, non_blocking=True), labels.to(dev, non_blocking=True)
            if dev.type == "cuda":
                images = images.to(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = step_model(images)
                loss = criterion(logits, labels)
            loss.backward()
            _warmed_step(optimizer, epoch * len(loader) + step, settings.warmup_epochs * len(loader))
            loss_sum += loss.detach().double() * len(labels)
            correct += (logits.detach().argmax(1) == labels).sum()
            seen += len(labels)
            if step % PROGRESS_EVERY == 0 and not bar.disable:
                bar.set_postfix(loss=f"{float(loss_sum) / seen:.3f}")
        loss_total = float(loss_sum)
        elapsed = time.perf_counter() - started
        scheduler.step()
        if not math.isfinite(loss_total):
            raise InputDataError(f"training diverged (loss {loss_total}) at epoch {epoch}; lower train.lr")
        row = {
            "epoch": epoch,
            "lr": lr,
            "train_loss": loss_total / seen,
            "train_acc": int(correct) / seen,
            "images_per_s": seen / elapsed,
        }
        scored = (epoch + 1) % eval_every == 0 or epoch + 1 == settings.epochs
        row.update(_evaluate(model, clean_loader, stylized_loader if scored else None, textures, dev, amp_dtype))
        for name, diagnostic_loader in diagnostic_loaders.items():
            if scored:
                pred, target = predict(model, diagnostic_loader, dev, amp_dtype)
                row[f"{name}_acc"] = float((pred == target).float().mean())
            else:
                row[f"{name}_acc"] = math.nan
        # Plain ints and floats: checkpoints are read back with the weights-only loader.
        rows.append({key: value if isinstance(value, int) else float(value) for key, value in row.items()})
        if recorder is not None:
            recorder.record(epoch + 1)
        logger.info("epoch %d: %s", epoch, json.dumps({k: round(v, 4) for k, v in row.items()}))
        save_checkpoint(
            {
                "identity": identity,
                "finished": epoch + 1 == settings.epochs,
                "epoch": epoch,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "metrics": rows,
                "rng": rng_states(),
                "masks": recorder.masks if recorder is not None else {},
            },
            checkpoint_path,
        )
    if recorder is not None:
        recorder.save(out_dir / "masks.pt")
    summary = _write_results(out_dir, model, classes, settings, rows, provenance=provenance,
                             diagnostic_images={name: len(dataset) for name, dataset in diagnostic_data.items()})
    finish_run(checkpoint_path)
    return summary


def _mask_recorder(model: nn.Module, clean_set, count: int, channels: tuple[int, ...]):
    """A recorder of the model's first Top-K layer on fixed validation images, or None."""
    layers = topk_layers(model)
    if count <= 0 or not layers:
        return None
    images = torch.stack([clean_set[i][0] for i in range(min(count, len(clean_set)))])
    return MaskRecorder(model, next(iter(layers)), images, list(channels))


def _evaluate(model, clean_loader, stylized_loader, textures, dev, amp_dtype) -> dict[str, float]:
    """Clean accuracy, and with a ``stylized_loader`` the cue-conflict scores (else NaN: not scored)."""
    pred, target = predict(model, clean_loader, dev, amp_dtype)
    result = {"clean_acc": float((pred == target).float().mean())}
    if stylized_loader is None:
        result["stylized_acc"] = math.nan
        if textures is not None:
            result.update(dict.fromkeys(CUE_CONFLICT_SCORES, math.nan))
        return result
    pred, target = predict(model, stylized_loader, dev, amp_dtype)
    result["stylized_acc"] = float((pred == target).float().mean())
    if textures is not None:
        result.update(cue_conflict_scores(pred, target, textures))
    return result


def _write_results(
    out_dir: Path, model: nn.Module, classes: list[str], settings: TrainSettings, rows: list[dict[str, Any]],
    *, provenance: dict[str, Any] | None = None, diagnostic_images: dict[str, int] | None = None,
) -> dict[str, Any]:
    from topkshape.atomic import atomic_file
    from topkshape.provenance import provenance_record

    metrics = pd.DataFrame(rows)
    final = rows[-1]
    summary = {
        "settings": dataclasses.asdict(settings),
        "classes": classes,
        "final_epoch": {k: v for k, v in final.items() if k not in ("lr",)},
        # The paper code's protocol: the best epoch of each set, chosen on that same set.
        "best_epoch": {
            "clean_acc": float(metrics["clean_acc"].max()),
            "clean_epoch": int(metrics["clean_acc"].idxmax()),
            "stylized_acc": float(metrics["stylized_acc"].max()),
            "stylized_epoch": int(metrics["stylized_acc"].idxmax()),
        },
        "mean_images_per_s": float(metrics["images_per_s"].mean()),
        # Image counts of the diagnostic sets: their accuracies are tested against chance per image.
        "diagnostic_images": dict(diagnostic_images or {}),
        "provenance": provenance_record(provenance),
    }
    with atomic_file(out_dir / "model.pt") as tmp:
        torch.save({"model": model.state_dict(), "classes": classes, "settings": dataclasses.asdict(settings)}, tmp)
    with atomic_file(out_dir / "metrics.csv") as tmp:
        metrics.to_csv(tmp, index=False)
    with atomic_file(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m topkshape.classify.train TRAIN VAL STYLIZED OUT [--epochs ...]``."""
    parser = argparse.ArgumentParser(description="Train one Table 1 classifier (resumable).")
    for name in ("train_dir", "clean_dir", "stylized_dir", "out_dir"):
        parser.add_argument(name)
    defaults = TrainSettings()
    for field in dataclasses.fields(TrainSettings):
        default = getattr(defaults, field.name)
        # bool("False") is True: parse booleans by their spelling.
        if isinstance(default, tuple):  # crop_scale: two numbers
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=float, nargs=len(default), default=default)
            continue
        kind = (lambda text: text.lower() in ("1", "true", "yes")) if isinstance(default, bool) else type(default)
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=kind, default=default)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = TrainSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSettings)})
    train_classifier(
        args.train_dir, args.clean_dir, args.stylized_dir, args.out_dir, settings,
        workers=args.workers, threads=args.threads, progress=not args.no_progress,
    )


if __name__ == "__main__":
    main()
