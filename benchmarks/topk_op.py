"""Forward+backward time and saved memory of our Top-K vs the paper code's formulation.

Measured side by side in one run on one device. Prints, per layer shape and K:
milliseconds per fwd+bwd for each, the speed ratio, the bytes kept for backward per
input element, and whether the outputs are identical (they must be, barring ties).

    python benchmarks/topk_op.py [--device cuda] [--repeats 5] [--shapes 32x64x56x56 ...]
"""

from __future__ import annotations

import argparse
import gc
import time
import weakref

import torch

from topkshape import spatial_topk, topk_count, topk_mask
from topkshape.reference import reference_topk

DEFAULT_SHAPES = ["32x64x56x56", "32x128x28x28", "32x128x112x112"]
FRACTIONS = [0.05, 0.2]


class _Saved:
    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


def retained_backward_bytes(fn, x: torch.Tensor) -> int:
    """Bytes of tensors the autograd graph of ``fn(x)`` still holds once it returns."""
    alive: weakref.WeakSet[_Saved] = weakref.WeakSet()

    def pack(t: torch.Tensor) -> _Saved:
        saved = _Saved(t)
        alive.add(saved)
        return saved

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda s: s.tensor):
        out = fn(x)
    gc.collect()
    seen: set[int] = set()
    total = 0
    for saved in list(alive):
        t = saved.tensor
        if t.data_ptr() == x.data_ptr() or t.untyped_storage().data_ptr() in seen:
            continue  # the input itself is alive anyway
        seen.add(t.untyped_storage().data_ptr())
        total += t.untyped_storage().nbytes()
    del out
    return total


def outputs_identical_outside_ties(x: torch.Tensor, fraction: float) -> str:
    """Compare outputs; channels with a tie at the K-th |x| may differ (ties are kept)."""
    with torch.no_grad():
        ours, paper = spatial_topk(x, fraction), reference_topk(x, fraction)[0]
        n, c, h, w = x.shape
        tied = topk_mask(x, fraction).sum(dim=(2, 3)) > topk_count(fraction, h * w)
        same = (ours == paper).flatten(2).all(dim=2)
        if bool(same[~tied].all()):
            return f"yes ({int(tied.sum())} tied ch.)" if tied.any() else "yes"
        return "NO"


def time_fwd_bwd(fn, x: torch.Tensor, grad: torch.Tensor, repeats: int) -> float:
    """Median milliseconds of one forward+backward."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for _ in range(2):
        fn(x).backward(grad)
    times = []
    for _ in range(repeats):
        x.grad = None
        sync()
        start = time.perf_counter()
        fn(x).backward(grad)
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES)
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}")
    header = f"{'shape':>16} {'K':>4} {'ours ms':>9} {'paper ms':>9} {'speedup':>8} {'ours B/el':>10} {'paper B/el':>11} {'identical':>18}"
    print(header)
    torch.manual_seed(0)
    for shape_text in args.shapes:
        shape = tuple(int(s) for s in shape_text.split("x"))
        x = torch.randn(shape, device=device, requires_grad=True)
        grad = torch.randn(shape, device=device)
        for fraction in FRACTIONS:
            ours = lambda t: spatial_topk(t, fraction)  # noqa: E731
            paper = lambda t: reference_topk(t, fraction)[0]  # noqa: E731
            identical = outputs_identical_outside_ties(x, fraction)
            t_ours = time_fwd_bwd(ours, x, grad, args.repeats)
            t_paper = time_fwd_bwd(paper, x, grad, args.repeats)
            b_ours = retained_backward_bytes(ours, x) / x.numel()
            b_paper = retained_backward_bytes(paper, x) / x.numel()
            print(
                f"{shape_text:>16} {fraction:>4.0%} {t_ours:>9.1f} {t_paper:>9.1f} {t_paper / t_ours:>7.2f}x"
                f" {b_ours:>10.2f} {b_paper:>11.2f} {identical:>18}",
                flush=True,
            )
            gc.collect()


if __name__ == "__main__":
    main()
