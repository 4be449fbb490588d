"""How often Top-K ties at its threshold, at each paper position of AlexNet and VGG16.

Max-pools copy one value into several outputs, so real feature maps hold equal
magnitudes; where the K-th and (K+1)-th largest ``|x|`` of a channel are equal, the
tie rule decides what is kept (``ties="keep"``: all tied entries; ``"exact"``: exactly
K, lowest spatial index first). Runs the model with Top-K inserted (``ties="keep"``)
on real cue-conflict stimuli (ToTensor + Normalize, no resize) and, at each Top-K
layer's input, counts per (sample, channel):

* ``tied``: channels with a tie at a positive threshold (more than K entries >= it);
* ``<K non-zero``: channels with fewer than K non-zero entries (the threshold is 0);
* ``keep kept/K``: mean number kept with ``ties="keep"`` over K;
* ``exact kept/K``: the same with ``ties="exact"`` (1 by construction: a check).

The weights are torchvision's random initialisation with a fixed seed (no download):
a count of how the architecture and the stimuli tie, not of a trained network.

    python benchmarks/topk_ties.py --images ../shared/paper-data/cue-conflict [--count 64] [--seed 0]
"""

from __future__ import annotations

import argparse
import time

import torch

from topkshape import build_model, topk_count, topk_mask
from topkshape.models import ALEXNET_TOPK_POSITIONS, VGG16_TOPK_POSITIONS, topk_layers
from topkshape.shape_bias.evaluate import decode_stimulus, list_cue_conflict_images, normalize

POSITIONS = {"alexnet": ALEXNET_TOPK_POSITIONS, "vgg16": VGG16_TOPK_POSITIONS}


def spread_sample(items: list, count: int) -> list:
    """``count`` items evenly spaced over the sorted list, so every category is represented."""
    if count >= len(items):
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def tie_counts(x: torch.Tensor, fraction: float) -> dict[str, float]:
    """Tie statistics of one Top-K input (see the module docstring)."""
    n, c, h, w = x.shape
    k = topk_count(fraction, h * w)
    magnitude = x.abs().flatten(2)
    kth = magnitude.topk(k, dim=2).values[..., -1:]
    at_least = (magnitude >= kth).sum(dim=2)
    positive = kth.squeeze(2) > 0
    return {
        "channels": n * c,
        "tied": int(((at_least > k) & positive).sum()),
        "few": int((~positive).sum()),
        "keep_kept": float(topk_mask(x, fraction, "keep").sum()) / k,
        "exact_kept": float(topk_mask(x, fraction, "exact").sum()) / k,
        "k": k,
        "hw": f"{h}x{w}",
    }


def measure(arch: str, fraction: float, images: torch.Tensor, seed: int, batch: int) -> list[dict]:
    torch.manual_seed(seed)
    model = build_model(arch, fraction=fraction, mode="topk", ties="keep").eval()
    layers = topk_layers(model)
    totals: dict[str, dict] = {}

    def hook(name):
        def record(module, inputs):
            stats = tie_counts(inputs[0], fraction)
            total = totals.setdefault(name, {"channels": 0, "tied": 0, "few": 0, "keep_kept": 0.0, "exact_kept": 0.0})
            for key in ("channels", "tied", "few", "keep_kept", "exact_kept"):
                total[key] += stats[key]
            total["k"], total["hw"] = stats["k"], stats["hw"]

        return record

    handles = [layer.register_forward_pre_hook(hook(name)) for name, layer in layers.items()]
    with torch.no_grad():
        for start in range(0, len(images), batch):
            model(normalize(images[start : start + batch]))
    for handle in handles:
        handle.remove()
    rows = []
    for position in POSITIONS[arch]:
        total = totals[f"{position}_topk"]
        ch = total["channels"]
        rows.append(
            {
                "arch": arch,
                "position": position,
                "map": total["hw"],
                "fraction": fraction,
                "k": total["k"],
                "tied": total["tied"] / ch,
                "few": total["few"] / ch,
                "keep_kept": total["keep_kept"] / ch,
                "exact_kept": total["exact_kept"] / ch,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help="cue-conflict folder (<category>/<image>.png)")
    parser.add_argument("--count", type=int, default=64, help="stimuli used, evenly spread over the sorted list")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.05, 0.1])
    parser.add_argument("--archs", nargs="+", default=list(POSITIONS), choices=list(POSITIONS))
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    items = spread_sample(list_cue_conflict_images(args.images), args.count)
    images = torch.stack([decode_stimulus(path, 224)[0] for path, _ in items])
    started = time.perf_counter()
    print(f"{len(items)} stimuli from {args.images}; random weights (torch.manual_seed({args.seed})); torch {torch.__version__}")
    print("| arch | position | map | K | tied channels | channels with < K non-zero | kept/K, ties=keep | kept/K, ties=exact |")
    print("|---|---|---|---|---|---|---|---|")
    for arch in args.archs:
        for fraction in args.fractions:
            for row in measure(arch, fraction, images, args.seed, args.batch):
                print(
                    f"| {row['arch']} | {row['position']} | {row['map']} | {row['k']} ({row['fraction']:.0%}) |"
                    f" {row['tied']:.1%} | {row['few']:.1%} | {row['keep_kept']:.2f} | {row['exact_kept']:.2f} |",
                    flush=True,
                )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
