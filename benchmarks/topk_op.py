"""Forward+backward time of our Top-K against the paper code's op and a bandwidth bound.

Measured side by side in one run on one device, interleaved (each repeat runs every
candidate once, in turn) so that load from other processes hits all of them alike;
medians are reported. Each timed call follows an untimed call of the same candidate,
so that it meets the memory allocator in the steady state of a training loop: without
it, a candidate that ran after one with other buffer sizes paid for fresh pages (on
this project's VM, up to 2x on the same code). Per layer shape and K it prints milliseconds per fwd+bwd for:

* ``keep``: ours with ``ties="keep"``; ``exact``: ours with ``ties="exact"``;
* ``paper``: the paper code's formulation (:mod:`topkshape.reference`);
* ``bound``: a plain masked copy, ``torch.where(mask, x, 0)`` forward and backward
  with the mask computed beforehand: what any masking op pays for memory traffic;

then each of ours as a multiple of the bound (``/bnd``, lower is better) and as a
speed-up over the paper op (``x pap``), the bytes kept for backward per input element,
and whether the outputs equal the paper op's (exact-K: in every channel without a tie).
``--selection`` adds the time of each exact selection candidate on the same rows: on the
CPU the compiled radix select (with and without its AVX-512 bracket pass) and numpy's
introselect on integer keys, whole masks, against ``torch.topk``/``torch.kthvalue`` and
introselect on floats for the K-th value alone. ``--dtype`` times another float type.

    python benchmarks/topk_op.py [--device cuda] [--repeats 9] [--shapes 32x64x56x56 ...] [--dtype float32] [--selection] [--numpy-fallback] [--portable-bracket]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import time
import weakref

import numpy as np
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


def agreement_with_paper(x: torch.Tensor, fraction: float) -> str:
    """Do our outputs equal the paper op's? Channels with a tie at the K-th |x| may differ."""
    with torch.no_grad():
        paper = reference_topk(x, fraction)[0]
        n, c, h, w = x.shape
        tied = topk_mask(x, fraction).sum(dim=(2, 3)) > topk_count(fraction, h * w)
        verdicts = []
        for ties in ("keep", "exact"):
            same = (spatial_topk(x, fraction, ties=ties) == paper).flatten(2).all(dim=2)
            verdicts.append("yes" if bool(same[~tied].all()) else "NO")
        note = f" ({int(tied.sum())} tied ch.)" if tied.any() else ""
        return "/".join(verdicts) + note


def interleaved_medians(fns: dict, x: torch.Tensor, grad: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median milliseconds of one forward+backward per candidate, the candidates interleaved."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for fn in fns.values():  # warm-up
        fn(x).backward(grad)
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            # An untimed call first: the timed one then finds the allocator as a training loop
            # leaves it (the same sizes freed by the step before), not as another candidate did.
            x.grad = None
            fns[name](x).backward(grad)
            x.grad = None
            sync()
            start = time.perf_counter()
            fns[name](x).backward(grad)
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) * 1e3 for name, t in times.items()}


def selection_candidates(x: torch.Tensor, k: int) -> dict:
    """Each exact k-th-largest-|x| candidate for the rows of ``x`` (a ``(rows,)`` result)."""
    n, c, h, w = x.shape
    rows = x.detach().abs().reshape(n * c, h * w)
    position = h * w - k
    candidates = {
        "torch.topk(sorted=False)": lambda: torch.topk(rows, k, dim=1, sorted=False).values.amin(dim=1),
        "torch.kthvalue": lambda: torch.kthvalue(rows, position + 1, dim=1).values,
    }
    if rows.device.type == "cpu":
        from topkshape import ops

        candidates["numpy introselect on floats, blocks+threads"] = lambda: ops.kth_largest(rows, k)
        if ops._NATIVE:
            candidates["compiled radix select (whole mask)"] = lambda: ops.topk_mask(x.detach(), k / (h * w))
            candidates["compiled, portable bracket pass (whole mask)"] = lambda: with_portable_bracket(
                lambda: ops.topk_mask(x.detach(), k / (h * w))
            )
        candidates["numpy introselect on int keys (whole mask)"] = lambda: with_numpy_selection(
            lambda: ops.topk_mask(x.detach(), k / (h * w))
        )
    return candidates


def with_numpy_selection(fn):
    """Run ``fn`` with the compiled select switched off: the fallback's numpy path."""
    from topkshape import ops

    saved = ops._NATIVE
    ops._NATIVE = {}
    try:
        return fn()
    finally:
        ops._NATIVE = saved


def with_portable_bracket(fn):
    """Run ``fn`` with the compiled select's float32 bracket pass in portable C, not AVX-512."""
    from topkshape import ops

    library = ops._NATIVE_LIBRARY
    library.topk_vector_bracket(0)
    try:
        return fn()
    finally:
        library.topk_vector_bracket(1)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    # glibc's malloc settings change how often fresh pages are faulted in: print any that are set.
    malloc = "; ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(("MALLOC_", "GLIBC_TUNABLES")))
    return f"CPU {model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, load average {load}" + (
        f"; {malloc}" if malloc else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES)
    parser.add_argument("--fractions", nargs="+", type=float, default=FRACTIONS)
    parser.add_argument("--dtype", default="float32", choices=["float16", "bfloat16", "float32", "float64"])
    parser.add_argument("--selection", action="store_true", help="also time each exact selection candidate")
    parser.add_argument("--numpy-fallback", action="store_true", help="time the numpy path that runs where the compiled select was not built")
    parser.add_argument("--portable-bracket", action="store_true", help="the compiled select without its AVX-512 gather, as on CPUs without AVX-512")
    args = parser.parse_args()
    from topkshape import ops

    if args.numpy_fallback:
        ops._NATIVE = {}
    if args.portable_bracket and ops._NATIVE_LIBRARY is not None:
        ops._NATIVE_LIBRARY.topk_vector_bracket(0)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    print(f"device: {describe_device(device)}; torch {torch.__version__}; numpy {np.__version__}")
    if device.type == "cpu":
        from topkshape.ops import cpu_selection

        print(f"CPU selection: {cpu_selection()}")
    print(f"{args.dtype}; medians of {args.repeats} interleaved repeats; ms per forward+backward")
    header = (
        f"{'shape':>16} {'K':>4} {'keep ms':>8} {'exact ms':>9} {'paper ms':>9} {'bound ms':>9}"
        f" {'keep/bnd':>9} {'exact/bnd':>10} {'keep x pap':>11} {'exact x pap':>12} {'B/el ours':>10} {'B/el paper':>11}  same as paper (keep/exact)"
    )
    print(header)
    torch.manual_seed(0)
    for shape_text in args.shapes:
        shape = tuple(int(s) for s in shape_text.split("x"))
        x = torch.randn(shape, device=device, dtype=dtype, requires_grad=True)
        grad = torch.randn(shape, device=device, dtype=dtype)
        for fraction in args.fractions:
            mask = topk_mask(x, fraction)
            zero = torch.zeros((), device=device, dtype=dtype)
            fns = {
                "keep": lambda t: spatial_topk(t, fraction),
                "exact": lambda t: spatial_topk(t, fraction, ties="exact"),
                "paper": lambda t: reference_topk(t, fraction)[0],
                "bound": lambda t: torch.where(mask, t, zero),
            }
            ms = interleaved_medians(fns, x, grad, args.repeats)
            b_ours = retained_backward_bytes(fns["keep"], x) / x.numel()
            b_paper = retained_backward_bytes(fns["paper"], x) / x.numel()
            print(
                f"{shape_text:>16} {fraction:>4.0%} {ms['keep']:>8.1f} {ms['exact']:>9.1f} {ms['paper']:>9.1f} {ms['bound']:>9.1f}"
                f" {ms['keep'] / ms['bound']:>8.2f}x {ms['exact'] / ms['bound']:>9.2f}x"
                f" {ms['paper'] / ms['keep']:>10.2f}x {ms['paper'] / ms['exact']:>11.2f}x"
                f" {b_ours:>10.2f} {b_paper:>11.2f}  {agreement_with_paper(x, fraction)}",
                flush=True,
            )
            if args.selection:
                k = topk_count(fraction, shape[2] * shape[3])
                candidates = selection_candidates(x, k)
                times = {name: [] for name in candidates}
                for r in range(args.repeats):
                    for name, fn in candidates.items():
                        start = time.perf_counter()
                        fn()
                        times[name].append(time.perf_counter() - start)
                for name, t in times.items():
                    print(f"{'':>22} selection: {name:<48} {np.median(t) * 1e3:8.1f} ms")
            gc.collect()


if __name__ == "__main__":
    main()
