"""Training-step throughput of the paper's Table 1 ResNet-18 and the Top-K layer's share of a step.

One step = forward, cross-entropy, backward, SGD (momentum 0.9, weight decay 5e-4) on a batch
of random 224 px images, as `topkshape.classify.train` runs it (on CUDA: channels_last and
bf16 autocast; on the CPU: float32). The Top-K share is measured two ways in the same run:

- *identity*: the same model with its Top-K layer(s) replaced by identity; share =
  1 - t(identity) / t(Top-K). Includes effects Top-K has on the layers around it.
- *hooks*: the time spent inside the Top-K modules' forward and backward, timed with module
  hooks (synchronising the device at each hook), divided by the step time of those hooked steps.

    python benchmarks/train_step.py [--device cpu|cuda] [--batch 16] [--steps 3] [--warmup 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from topkshape.models import build_model
from topkshape.models.surgery import topk_layers


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def without_topk(model: nn.Module) -> nn.Module:
    """The model with every Top-K layer replaced by identity (same weights, same layout)."""
    for name in topk_layers(model):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, nn.Identity())
    return model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model: nn.Module, device: torch.device, batch: int, size: int) -> Callable[[], None]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=generator).to(device)
    labels = torch.randint(0, 10, (batch,), generator=generator).to(device)
    if device.type == "cuda":
        images = images.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss()
    amp = torch.bfloat16 if device.type == "cuda" else None

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()

    return step


def time_steps(step: Callable[[], None], device: torch.device, steps: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


class TopKTimer:
    """Accumulates wall time inside Top-K modules' forward and backward passes."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.device, self.total, self._start = device, 0.0, {}
        self.handles = []
        for module in topk_layers(model).values():
            self.handles += [
                module.register_forward_pre_hook(lambda m, args: self._begin(m, "f")),
                module.register_forward_hook(lambda m, args, out: self._end(m, "f")),
                module.register_full_backward_pre_hook(lambda m, grad: self._begin(m, "b")),
                module.register_full_backward_hook(lambda m, gin, gout: self._end(m, "b")),
            ]

    def _begin(self, module: nn.Module, phase: str) -> None:
        _sync(self.device)
        self._start[(id(module), phase)] = time.perf_counter()

    def _end(self, module: nn.Module, phase: str) -> None:
        _sync(self.device)
        self.total += time.perf_counter() - self._start.pop((id(module), phase))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--fraction", type=float, default=0.2, help="Top-K fraction (the paper's Table 1: 20%% after layer2)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models (the trainer's train.compile switch)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        hardware = f"GPU {torch.cuda.get_device_name(device)}, CPU {cpu_model()}"
    else:
        hardware = f"CPU {cpu_model()}"
    print(f"{hardware}; {torch.get_num_threads()} torch threads; torch {torch.__version__}; python {platform.python_version()}", flush=True)
    print(f"resnet18_cifar (paper Table 1), {args.size} px, batch {args.batch}, Top-K {args.fraction:.0%} after layer2; "
          f"{'bf16 autocast, channels_last' if device.type == 'cuda' else 'float32'}{', torch.compile' if args.compile else ''}; median of {args.steps} interleaved steps each after {args.warmup} warm-up", flush=True)

    def build(with_topk: bool) -> nn.Module:
        torch.manual_seed(0)
        model = build_model("resnet18_cifar", fraction=args.fraction, num_classes=10, input_size=args.size).to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model.train() if with_topk else without_topk(model).train()

    topk_model = build(True)
    assert topk_layers(topk_model), "the model has no Top-K layer"
    plain_model = build(False)
    stepped = (torch.compile(topk_model), torch.compile(plain_model)) if args.compile else (topk_model, plain_model)
    topk_step, plain_step = make_step(stepped[0], device, args.batch, args.size), make_step(stepped[1], device, args.batch, args.size)
    time_steps(topk_step, device, 0, args.warmup)
    time_steps(plain_step, device, 0, args.warmup)
    # Interleaved, so that load from other processes (a shared machine) hits both alike.
    pairs = []
    for _ in range(args.steps):
        pairs.append((time_steps(topk_step, device, 1, 0)[0], time_steps(plain_step, device, 1, 0)[0]))
        print(f"  step {len(pairs)}: with Top-K {pairs[-1][0]:.3f} s, identity {pairs[-1][1]:.3f} s", flush=True)
    t_topk = statistics.median(t for t, _ in pairs)
    t_plain = statistics.median(t for _, t in pairs)

    timer = TopKTimer(topk_model, device)
    hooked_step = make_step(topk_model, device, args.batch, args.size)
    hooked = []
    for _ in range(args.steps):
        timer.total = 0.0
        hooked.append((time_steps(hooked_step, device, 1, 0)[0], timer.total))
    timer.remove()
    hooked_share = statistics.median(topk / step for step, topk in hooked)

    print(f"{'model':>28} {'s/step':>8} {'images/s':>9}")
    print(f"{'with Top-K':>28} {t_topk:8.3f} {args.batch / t_topk:9.2f}")
    print(f"{'Top-K replaced by identity':>28} {t_plain:8.3f} {args.batch / t_plain:9.2f}")
    print(f"Top-K share of a training step: {1 - t_plain / t_topk:.1%} (identity comparison), "
          f"{hooked_share:.1%} (time inside the Top-K layer, hooks)")


if __name__ == "__main__":
    main()
