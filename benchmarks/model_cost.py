"""Cost of the architectures the configs can choose: parameters, forward GFLOPs, CPU time.

Shows why the paper code's CIFAR-style ResNet-18 at 224 px is far heavier than
torchvision's ResNet-18 (stride-1 stem, no max-pool, 25,088-wide linear head).

    python benchmarks/model_cost.py [--size 224] [--batch 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from topkshape.models import build_model


def forward_gflops(model: torch.nn.Module, x: torch.Tensor) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / x.shape[0] / 1e9


def forward_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int = 3) -> float:
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return (time.perf_counter() - start) / repeats / x.shape[0] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    x = torch.randn(args.batch, 3, args.size, args.size)
    print(f"input {args.size}x{args.size}, CPU {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'architecture':>24} {'params (M)':>11} {'GFLOPs/img':>11} {'fwd ms/img':>11}")
    rows = []
    for arch, kwargs in [
        ("resnet18", {"num_classes": 10}),
        ("resnet18_cifar", {"num_classes": 10, "input_size": args.size}),
    ]:
        for fraction in (None, 0.2):
            model = build_model(arch, fraction=fraction, **kwargs).eval()
            params = sum(p.numel() for p in model.parameters()) / 1e6
            gflops = forward_gflops(model, x)
            ms = forward_ms(model, x)
            label = arch + (" + TopK 20%" if fraction else "")
            rows.append((label, gflops, ms))
            print(f"{label:>24} {params:>11.2f} {gflops:>11.2f} {ms:>11.1f}", flush=True)
    print(f"resnet18_cifar / resnet18: {rows[2][1] / rows[0][1]:.1f}x FLOPs, {rows[2][2] / rows[0][2]:.1f}x CPU time")


if __name__ == "__main__":
    main()
