"""FastGAN generator+discriminator training iterations per second, with and without Top-K.

Side by side in one run, same settings, on generated images:

    python benchmarks/gan_iteration.py [--im-size 64] [--iterations 20] [--ngf 16] [--ndf 8] [--device cuda] [--recon-loss lpips]
    python benchmarks/gan_iteration.py --ngf 8 --small-sizes 128 64   # the small path at FastGAN's 128 px or at 64

``--recon-loss lpips`` (the paper config's) needs torchvision's VGG-16 weights under
``$TORCH_HOME/hub/checkpoints/``; ``l1`` (the default config's) needs none.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from topkshape.data.synthetic import write_fewshot_set
from topkshape.gan.train import GanSettings, train_fastgan
from topkshape.provenance import _cpu_model


def iterations_per_second(images: Path, settings: GanSettings, device: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train_fastgan(images, out, settings, device=device, progress=False)
        return settings.iterations / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--im-size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--ndf", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--recon-loss", choices=["l1", "mse", "lpips"], default="l1")
    parser.add_argument("--small-sizes", type=int, nargs="+", default=[128], help="gan.small_size values, side by side")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    cpu = f"CPU {_cpu_model()}, {torch.get_num_threads()} threads"  # CPU models differ a lot within a machine kind
    name = f"{torch.cuda.get_device_name()} ({cpu})" if args.device == "cuda" else cpu
    print(f"device: {name}; {args.im_size} px, ngf {args.ngf}, ndf {args.ndf}, batch {args.batch_size}, {args.iterations} iterations, "
          f"recon loss {args.recon_loss}")
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        write_fewshot_set(images, "hexagon", count=32, image_size=args.im_size, progress=False)
        rates = {}
        for small_size in args.small_sizes:
            for label, fraction in (("FastGAN", None), ("FastGAN + Top-K 5%", 0.05)):
                settings = GanSettings(im_size=args.im_size, small_size=small_size, ngf=args.ngf, ndf=args.ndf, batch_size=args.batch_size,
                                       iterations=args.iterations, topk_fraction=fraction, checkpoint_every=args.iterations,
                                       log_every=args.iterations, recon_loss=args.recon_loss)
                iterations_per_second(images, GanSettings(**{**settings.__dict__, "iterations": 2, "checkpoint_every": 2, "log_every": 2}), args.device)
                rates[label, small_size] = iterations_per_second(images, settings, args.device)
                print(f"{label:>20}, small path {small_size} px: {rates[label, small_size]:.2f} it/s", flush=True)
            print(f"small path {small_size} px: Top-K / plain speed ratio {rates['FastGAN + Top-K 5%', small_size] / rates['FastGAN', small_size]:.2f}")
        first = args.small_sizes[0]
        for small_size in args.small_sizes[1:]:
            print(f"FastGAN speed, small path {small_size} px / {first} px: {rates['FastGAN', small_size] / rates['FastGAN', first]:.2f}")


if __name__ == "__main__":
    main()
