"""Run a classifier over cue-conflict images and record its decisions in model-vs-human's format.

Works on the Geirhos et al. stimuli (``<shape>/<shape><n>-<texture><m>.png``, 16
categories, decisions through the 1000 -> 16 mapping) and on the embedded default's
generated cue-conflict sets (``<shape>/<shape>_<i>-<texture>.png``, decisions among
the trained classifier's own classes). Both image names give the texture category by
the toolbox's rule, so the same analysis scores both.

Stimuli are fed as model-vs-human feeds them (``modelvshuman/datasets/base.py``:
``resize = False if image_size == 224``; ``datasets/dataloaders.py``): an image already
at the model's input size gets only ToTensor + Normalize, unzoomed and uncropped. An
image of any other size is resized as the toolbox resizes, Resize(256) + CenterCrop(224),
scaled to the input size. The stimuli are decoded once into a uint8 tensor
(:func:`load_stimuli`), so a sweep over Top-K settings never decodes them again.

Command line (any torchvision or timm classifier or your own, with or without Top-K at a
placement, see :mod:`topkshape.models.placement`; ``--arch``/``--positions`` are aliases)::

    python -m topkshape.shape_bias.evaluate --model torchvision:resnet50 --weights PATH|random|NAME \\
        --placement stages --fraction 0.1 --mode topk --ties exact --images DIR --out FILE
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn
from torchvision.transforms import functional as TF
from tqdm import tqdm

from topkshape.classify.data import IMAGENET_MEAN, IMAGENET_STD
from topkshape.errors import ConfigError, InputDataError, TopkshapeError
from topkshape.shape_bias.analysis import RAW_COLUMNS
from topkshape.shape_bias.decisions import sixteen_class_decisions
from topkshape.shape_bias.tags import setting_tag

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
logger = logging.getLogger(__name__)


def list_cue_conflict_images(folder: str | Path) -> list[tuple[Path, str]]:
    """(image, shape category) pairs, sorted; the category is the image's folder name."""
    root = Path(folder)
    if not root.is_dir():
        raise InputDataError(f"cue-conflict folder not found: {root}")
    items = [
        (path, path.parent.name)
        for path in sorted(root.glob("*/*"))
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    ]
    if not items:
        raise InputDataError(f"no cue-conflict images (<category>/<image>.png) in {root}")
    return items


def decode_stimulus(path: Path, image_size: int) -> tuple[Tensor, bool]:
    """(3, S, S) uint8 pixels of one stimulus, and whether it had to be resized.

    At the input size: the pixels as they are. Otherwise the toolbox's resize,
    Resize(256) + CenterCrop(224) at 224 px, the same ratio at other input sizes.
    """
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        size = path.stat().st_size if path.exists() else 0
        reason = "empty file (0 bytes)" if size == 0 else str(err)
        raise InputDataError(f"unreadable cue-conflict image {path}: {reason}") from None
    resized = rgb.size != (image_size, image_size)
    if resized:
        rgb = TF.center_crop(TF.resize(rgb, round(image_size * 256 / 224)), image_size)
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous(), resized


@dataclass(frozen=True)
class Stimuli:
    """A cue-conflict folder decoded once: its (image, category) list and uint8 pixels."""

    items: list[tuple[Path, str]]
    pixels: Tensor  # (N, 3, S, S) uint8, the order of ``items``
    resized: int  # how many images were not at the input size

    def __len__(self) -> int:
        return len(self.items)

    def to(self, device: str | torch.device) -> Stimuli:
        return Stimuli(self.items, self.pixels.to(device), self.resized)


def evenly_per_category(items: Sequence[tuple[Path, str]], per_class: int | None) -> list[tuple[Path, str]]:
    """``per_class`` stimuli of each category, evenly spaced in name order (all when None or too few).

    Evenly spaced rather than the first N: a category's first names share one shape image.
    """
    if per_class is None:
        return list(items)
    by_category: dict[str, list[tuple[Path, str]]] = {}
    for item in items:
        by_category.setdefault(item[1], []).append(item)
    chosen = []
    for members in by_category.values():
        count = min(per_class, len(members))
        chosen += [members[(index * len(members)) // count] for index in range(count)]
    return sorted(chosen)


def load_stimuli(folder: str | Path, image_size: int, *, threads: int = 1, per_class: int | None = None) -> Stimuli:
    """Decode the stimuli of ``folder`` at ``image_size`` (PNG decoding runs in ``threads`` threads).

    ``per_class``: only that many of each category (:func:`evenly_per_category`); None: all.
    """
    items = evenly_per_category(list_cue_conflict_images(folder), per_class)
    paths = [path for path, _ in items]
    if threads > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            decoded = list(pool.map(lambda p: decode_stimulus(p, image_size), paths))
    else:
        decoded = [decode_stimulus(p, image_size) for p in paths]
    pixels = torch.stack([pix for pix, _ in decoded])
    return Stimuli(items, pixels, sum(resized for _, resized in decoded))


def normalize(pixels: Tensor) -> Tensor:
    """uint8 pixels -> ToTensor + Normalize(ImageNet mean, std), the same float operations."""
    mean = torch.as_tensor(IMAGENET_MEAN, dtype=torch.float32, device=pixels.device).view(-1, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, dtype=torch.float32, device=pixels.device).view(-1, 1, 1)
    return pixels.to(torch.float32).div(255).sub(mean).div(std)


def _device(device: str | torch.device | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


@torch.no_grad()
def model_decisions(
    model: nn.Module,
    stimuli: Stimuli,
    *,
    classes: Sequence[str] | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = True,
    desc: str = "cue-conflict",
    preprocess: Callable[[Tensor], Tensor] | None = None,
) -> list[str]:
    """One decision per stimulus.

    ``classes=None``: ``model`` is a 1000-class ImageNet classifier and decisions go
    through the 16-category mapping (mean probability per category); otherwise a
    decision is ``classes[argmax]``. ``preprocess`` turns uint8 pixels into the model's
    input (:class:`topkshape.models.zoo.Preprocessing`); by default ImageNet's normalization.
    """
    preprocess = preprocess or normalize
    dev = _device(device)
    model = model.to(dev).eval()
    responses: list[str] = []
    starts = range(0, len(stimuli), batch_size)
    for start in tqdm(starts, desc=desc, disable=None if progress else True, leave=False):
        batch = preprocess(stimuli.pixels[start : start + batch_size].to(dev, non_blocking=True))
        logits = model(batch).float()
        if classes is None:
            if logits.shape[1] != 1000:
                raise InputDataError(f"a model with {logits.shape[1]} outputs needs its class names; the 16-class mapping needs 1000 ImageNet outputs")
            responses += sixteen_class_decisions(torch.softmax(logits, dim=1).cpu())
        else:
            responses += [classes[i] for i in logits.argmax(dim=1).cpu().tolist()]
    return responses


def raw_decisions(stimuli: Stimuli, responses: Sequence[str], subject: str) -> pd.DataFrame:
    """model-vs-human's raw rows (subj, session, trial, rt, object_response, category, condition, imagename)."""
    return pd.DataFrame(
        {
            "subj": subject,
            "session": 1,
            "trial": np.arange(1, len(stimuli) + 1),
            "rt": np.nan,
            "object_response": list(responses),
            "category": [category for _, category in stimuli.items],
            "condition": np.nan,
            "imagename": [path.name for path, _ in stimuli.items],
        },
        columns=RAW_COLUMNS,
    )


def evaluate_cue_conflict(
    model: nn.Module,
    folder: str | Path,
    *,
    subject: str,
    classes: Sequence[str] | None = None,
    image_size: int = 224,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    workers: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Decisions of ``model`` on every image of ``folder``, as model-vs-human raw rows."""
    stimuli = load_stimuli(folder, image_size, threads=max(1, workers))
    responses = model_decisions(model, stimuli, classes=classes, batch_size=batch_size, device=device, progress=progress, desc=f"cue-conflict {subject}")
    return raw_decisions(stimuli, responses, subject)


# --- Top-K at inference -----------------------------------------------------------------


def paper_topk_positions(arch: str) -> tuple[str, ...]:
    """The modules the paper's code puts Top-K after, for the architectures it uses."""
    from topkshape.models import (
        ALEXNET_TOPK_POSITIONS,
        RESNET18_TOPK_POSITIONS,
        VGG16_TOPK_POSITIONS,
    )

    positions = {
        "alexnet": ALEXNET_TOPK_POSITIONS,
        "vgg16": VGG16_TOPK_POSITIONS,
        "resnet18": RESNET18_TOPK_POSITIONS,
        "resnet18_cifar": RESNET18_TOPK_POSITIONS,
    }
    if arch not in positions:
        raise ConfigError(f"no paper Top-K positions for {arch!r} (known: {sorted(positions)}); name the modules with --positions")
    return positions[arch]


def with_inference_topk(
    plain: nn.Module, positions: Sequence[str], fraction: float | None, mode: str = "topk", *, ties: str | None = None,
    tie_seed: int = 0,
) -> nn.Module:
    """A copy of ``plain`` with Top-K after each of ``positions`` (``fraction=None``: ``plain`` itself).

    ``positions`` are module names (``(N, C, H, W)`` outputs) or resolved placement candidates
    (:func:`topkshape.models.placement.resolve_placement`), which carry token and channels-last layouts.

    ``plain`` is never modified, so one loaded model serves a whole sweep of settings.
    """
    from topkshape.models import insert_topk

    if fraction is None:
        return plain
    model = copy.deepcopy(plain)
    extra: dict[str, Any] = {} if ties is None else {"ties": ties}
    names = [getattr(position, "name", position) for position in positions]
    layouts = {p.name: (p.layout, p.prefix) for p in positions if getattr(p, "layout", "nchw") != "nchw"}
    return insert_topk(model, names, fraction=fraction, mode=mode, tie_seed=tie_seed, layouts=layouts, **extra)  # type: ignore[arg-type]


def topk_summary(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Layer name -> its kind, fraction and mode: what Top-K a model actually runs."""
    from topkshape.models import topk_layers

    return {
        name: {"layer": type(layer).__name__, "fraction": layer.fraction, "mode": getattr(layer, "keep", "mean_replace"), "ties": layer.ties}
        for name, layer in topk_layers(model).items()
    }


# --- command line -------------------------------------------------------------------------


def load_weights(model: nn.Module, weights_file: str | Path) -> None:
    """A state dict file (or a checkpoint holding one under ``state_dict``/``model``), weights-only."""
    from topkshape.pretrained import load_weights_file

    load_weights_file(model, weights_file)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m topkshape.shape_bias.evaluate",
        description="Decisions of any classifier (torchvision, timm, your own) on cue-conflict stimuli, with or "
                    "without Top-K at a placement you choose, as a model-vs-human raw CSV.",
    )
    parser.add_argument("--model", "--arch", dest="model", required=True,
                        help="torchvision:<name>, timm:<name>, python:<module>:<function>, or a bare torchvision name (alexnet, vgg16, ...)")
    parser.add_argument("--weights", default="DEFAULT",
                        help="PATH of a state dict (.pt/.pth/.bin/.safetensors), random, a torchvision weights name (DEFAULT, IMAGENET1K_V1), "
                             "or a timm pretrained tag (DEFAULT: timm's default); none = random")
    parser.add_argument("--seed", type=int, default=0, help="--weights random: the seed the model is built under")
    parser.add_argument("--weights-sha256", help="pin: the SHA-256 a weights file must have")
    parser.add_argument("--fraction", type=float, help="Top-K fraction K at every position; omit for the plain model")
    parser.add_argument("--mode", default="topk", choices=("topk", "non_topk", "mean_replace"), help="keep the Top-K set, its complement, or Eq. 2")
    parser.add_argument("--ties", default="keep", choices=("keep", "exact", "random"),
                        help="keep every entry tied at the threshold, exactly K (the paper code's torch.topk), or exactly K with ties drawn at random")
    parser.add_argument("--tie-seed", type=int, default=0, help="--ties random: the seed of the first Top-K position's draws")
    parser.add_argument("--placement", "--positions", dest="placement",
                        help="where Top-K goes: paper, stages, every_block, every_relu, module names, globs (layer[2-3], features.*) "
                             "or type:<Class>, comma-separated (default: paper for alexnet, vgg16, resnet18)")
    parser.add_argument("--list-positions", action="store_true", help="print every module with its output shape and the Top-K it would get, then stop")
    parser.add_argument("--images", type=Path, help="cue-conflict folder: <category>/<image>.png")
    parser.add_argument("--out", type=Path, help="raw CSV to write (the run's record goes beside it, as <out>.json)")
    parser.add_argument("--subject", help="the subj column (default: <model> or <model>-<mode><K%%>)")
    parser.add_argument("--image-size", type=int,
                        help="the model's input size (default: from its weights' metadata or timm's data config); stimuli of another "
                             "size are resized as model-vs-human does")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for decoding and inference")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when available)")
    return parser


def main(argv: list[str] | None = None) -> int:
    import json

    from topkshape.atomic import atomic_file
    from topkshape.models.placement import format_positions, probe, resolve_placement
    from topkshape.models.zoo import STIMULUS_SIZE, load_model, parse_model_name

    parser = _parser()
    args = parser.parse_args(argv)
    if not args.list_positions and (args.images is None or args.out is None):
        parser.error("--images and --out are required (unless --list-positions)")
    try:
        torch.set_num_threads(max(1, args.threads))
        name = parse_model_name(args.model)
        loaded = load_model(name, args.weights, seed=args.seed, sha256=args.weights_sha256)
        if args.image_size:
            loaded.preprocessing = dataclasses.replace(loaded.preprocessing, input_size=args.image_size,
                                                       source=f"{loaded.preprocessing.source}, input size {args.image_size} from --image-size")
        stimulus_size = args.image_size or STIMULUS_SIZE
        positions = []
        if args.list_positions or args.fraction is not None:  # one forward pass tells each module's output
            candidates = probe(loaded.model, loaded.preprocessing.input_size, loaded.prefix_tokens)
        if args.list_positions:
            print(format_positions(candidates))
            return 0
        if args.fraction is not None:
            placement = args.placement or "paper"
            positions = resolve_placement(loaded.model, placement, candidates, arch=name.arch)
            try:
                model = with_inference_topk(loaded.model, positions, args.fraction, args.mode, ties=args.ties, tie_seed=args.tie_seed)
            except ValueError as err:  # a bad fraction
                raise ConfigError(str(err)) from None
        else:
            model = loaded.model
        label = name.name.rsplit(":", 1)[-1]
        subject = args.subject or (label if args.fraction is None else f"{label}-{setting_tag(args.fraction, args.mode)}")
        stimuli = load_stimuli(args.images, stimulus_size, threads=max(1, args.threads))
        responses = model_decisions(model, stimuli, batch_size=args.batch_size, device=args.device, progress=False,
                                    preprocess=loaded.preprocessing)
        rows = raw_decisions(stimuli, responses, subject)
        record = {**loaded.record(), "subject": subject, "fraction": args.fraction, "mode": args.mode, "ties": args.ties,
                  "placement": args.placement, "positions": [{"module": p.name, "kind": p.kind} for p in positions]}
        with atomic_file(args.out) as tmp:  # makes the folder too
            rows.to_csv(tmp, index=False)
        with atomic_file(Path(f"{args.out}.json")) as tmp:
            Path(tmp).write_text(json.dumps(record, indent=2) + "\n")
    except TopkshapeError as err:
        print(f"topkshape: {err}", file=sys.stderr)
        return 1
    where = f" at {len(positions)} positions ({', '.join(p.name for p in positions)})" if positions else ""
    print(f"{len(rows)} decisions of {subject}{where} ({stimuli.resized} images resized to {stimulus_size} px) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
