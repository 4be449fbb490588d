"""Which threads the CPU Top-K select should run on, measured inside a training-like loop.

After each parallel op torch's OpenMP workers keep spinning for a while on their cores, so
threads of our own that start right then (the forward after the previous backward) wait
for those cores. This times the forward and the backward of ``spatial_topk`` in a
forward+backward loop, median per part, for: the compiled select on torch's OpenMP threads
(what runs), the same select on a Python thread pool (what runs where the extension was
built without OpenMP), the numpy fallback (its own pool), and the masked-copy bound.

    python benchmarks/topk_threads.py [--shape 32x128x28x28] [--fraction 0.05] [--repeats 21]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from topkshape import ops, spatial_topk, topk_mask
from topk_op import describe_device, with_numpy_selection


def with_python_pool(fn):
    """Run ``fn`` with the compiled select on a Python thread pool, as a build without OpenMP does."""
    library = ops._NATIVE_LIBRARY
    openmp = library.topk_openmp
    library.topk_openmp = lambda: 0
    try:
        return fn()
    finally:
        library.topk_openmp = openmp


def loop_medians(step, x: torch.Tensor, grad: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median milliseconds of the forward and of the backward of ``step(x)`` over ``repeats`` steps."""
    forward, backward = [], []
    for _ in range(repeats + 1):  # the first step warms up
        x.grad = None
        start = time.perf_counter()
        y = step(x)
        middle = time.perf_counter()
        y.backward(grad)
        end = time.perf_counter()
        forward.append(middle - start)
        backward.append(end - middle)
        del y
    return statistics.median(forward[1:]) * 1e3, statistics.median(backward[1:]) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="32x128x28x28")
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    if not ops._NATIVE:
        raise SystemExit("the compiled select was not built: nothing to compare")
    shape = tuple(int(s) for s in args.shape.split("x"))
    print(f"device: {describe_device(torch.device('cpu'))}; torch {torch.__version__}")
    print(f"{args.shape}, K = {args.fraction:.0%}, float32; medians of {args.repeats} forward+backward steps, ms")
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    grad = torch.randn(shape)
    mask = topk_mask(x, args.fraction)
    zero = torch.zeros(())
    runs = {
        "compiled, torch's OpenMP threads": lambda fn: fn(),
        "compiled, a Python thread pool": with_python_pool,
        "numpy fallback, a Python thread pool": with_numpy_selection,
    }
    print(f"{'':<40} {'forward':>8} {'backward':>9} {'total':>7}")
    for name, run in runs.items():
        fwd, bwd = run(lambda: loop_medians(lambda t: spatial_topk(t, args.fraction), x, grad, args.repeats))
        print(f"{name:<40} {fwd:>8.2f} {bwd:>9.2f} {fwd + bwd:>7.2f}", flush=True)
    fwd, bwd = loop_medians(lambda t: torch.where(mask, t, zero), x, grad, args.repeats)
    print(f"{'masked-copy bound (torch.where)':<40} {fwd:>8.2f} {bwd:>9.2f} {fwd + bwd:>7.2f}")


if __name__ == "__main__":
    main()
