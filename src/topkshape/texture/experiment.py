"""The workflow's Figure 2/3/8 jobs: texture synthesis and reconstruction of target images
with and without Top-K responses, measured, and the mask-dynamics grid.

Feature networks: ``vgg19`` (torchvision VGG-19 with average pooling at Gatys' layers, the
paper code's network; ``weights: null`` gives seeded random weights, the embedded
default's offline choice) or ``trained_<subset>`` (the Table 1 baseline of that subset;
layers are its module names).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from topkshape.atomic import atomic_file
from topkshape.errors import InputDataError
from topkshape.mask_recording import load_mask_inputs, load_mask_outputs, load_masks
from topkshape.texture.features import FeatureTaps, gatys_vgg19, imagenet_normalize
from topkshape.texture.figures import save_mask_dynamics, save_panels
from topkshape.texture.structure import edge_correlation, ssim
from topkshape.texture.synthesis import gram_loss, reconstruct, synthesize_texture

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def feature_taps(options: dict[str, Any], checkpoint: str | Path | None) -> FeatureTaps:
    """The configured feature network, tapped at the configured layers.

    Random VGG-19 weights (``weights: null``) are drawn from ``seed``, so the network,
    and with it every synthesis, is the same in every run. VGG layers are Gatys names
    (relu1_1, pool1, ...) or indices into ``features``.
    """
    if options["feature_net"] == "vgg19":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options["seed"])
            net, names = gatys_vgg19(options["weights"])
        layers = [names.get(layer, layer) for layer in options["layers"]]
        # Nothing after the deepest tap affects the loss (the paper code cuts there too).
        net = net[: max(int(layer) for layer in layers) + 1]
    else:
        from topkshape.classify.trained import load_trained_classifier

        net, _ = load_trained_classifier(checkpoint, None, "topk")
        layers = list(options["layers"])
    return FeatureTaps(net, layers)


def _target_paths(folder: Path, count: int, names: list[str] | None) -> list[Path]:
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not paths:
        raise InputDataError(f"no target images in {folder}")
    if not names:
        return paths[:count]
    by_stem = {p.stem: p for p in paths}
    missing = [name for name in names if name not in by_stem]
    if missing:
        raise InputDataError(f"texture.target_names {missing} are not images in {folder}")
    return [by_stem[name] for name in names]


def load_targets(
    folder: str | Path, count: int, size: int, *, resize: str = "stretch", names: list[str] | None = None
) -> list[tuple[str, torch.Tensor]]:
    """The target images as (1, 3, size, size) tensors in [0, 1].

    ``names`` (file stems) picks them; otherwise the first ``count`` in sorted order.
    ``resize="stretch"`` resizes to size x size with Lanczos, as the paper code does;
    ``"center_crop"`` keeps the aspect ratio (short side to ``size``, then a centre crop).
    """
    targets = []
    for path in _target_paths(Path(folder), count, names):
        with Image.open(path) as image:
            image = image.convert("RGB")
            if resize == "stretch":
                image = TF.resize(image, [size, size], interpolation=InterpolationMode.LANCZOS)
            elif resize == "center_crop":
                image = TF.center_crop(TF.resize(image, size), size)
            else:
                raise ValueError(f"resize must be 'stretch' or 'center_crop', got {resize!r}")
            tensor = TF.to_tensor(image)
        targets.append((path.stem, tensor.unsqueeze(0)))
    return targets


def run_texture_experiments(
    options: dict[str, Any], checkpoint, target_dir, out: dict[str, Any], *, device: str | None = None
) -> pd.DataFrame:
    """Figure 2 (synthesis w/ and w/o Top-K) and Figure 3 (masked reconstruction), with measures.

    Each result is scored against its target: the objective at the start and at the end
    (its ratio says how far the optimisation went), the Gram-matrix distance over all
    responses (texture match) and two structure measures, SSIM and the correlation of
    Sobel edge maps. The paper's claim: without Top-K responses, structure goes.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    taps = feature_taps(options, checkpoint).to(dev)
    common = {
        "topk_fraction": options["topk_fraction"],
        "max_iter": options["max_iter"],
        "loss": options["loss"],
        "bounds": options["bounds"],
        "seed": options["seed"],
        "normalize": imagenet_normalize,
    }
    synthesis = {**common, "steps": options["steps"], "lr": options["lr"]}
    reconstruction = {**common, "steps": options["reconstruction_steps"], "lr": options["reconstruction_lr"]}
    targets = load_targets(
        target_dir, options["num_targets"], options["image_size"], resize=options["target_resize"], names=options["target_names"]
    )
    rows, synthesis_panels, reconstruction_panels = [], [], []
    for name, target in targets:
        target = target.to(dev)
        results = {
            ("synthesis", "with_topk"): synthesize_texture(taps, target, remove_topk=False, **synthesis),
            ("synthesis", "without_topk"): synthesize_texture(taps, target, remove_topk=True, **synthesis),
        }
        for mask in ("topk", "non_topk", "identity"):
            results[("reconstruction", mask)] = reconstruct(taps, target, mask=mask, **reconstruction)
        for (experiment, variant), (image, history) in results.items():
            rows.append(
                {
                    "target": name,
                    "experiment": experiment,
                    "variant": variant,
                    "objective_start": history[0],
                    "objective_final": history[-1],
                    "objective_reduction": history[0] / history[-1] if history[-1] > 0 else float("inf"),
                    "gram_loss_all_responses": gram_loss(
                        taps, image, target, remove_topk=False, normalize=imagenet_normalize, loss=options["loss"]
                    ),
                    "ssim": ssim(image.cpu(), target.cpu()),
                    "edge_correlation": edge_correlation(image.cpu(), target.cpu()),
                }
            )
        synthesis_panels.append((name, [("target", target.cpu()), ("S w/ Top-K", results[("synthesis", "with_topk")][0].cpu()),
                                        ("S w/o Top-K", results[("synthesis", "without_topk")][0].cpu())]))
        reconstruction_panels.append((name, [("target", target.cpu())] + [
            (label, results[("reconstruction", mask)][0].cpu())
            for mask, label in (("topk", "Top-K mask"), ("non_topk", "non-Top-K mask"), ("identity", "identity mask"))
        ]))
    table = pd.DataFrame(rows)
    with atomic_file(out["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    save_panels(synthesis_panels, [out["synthesis_png"], out["synthesis_pdf"]])
    save_panels(reconstruction_panels, [out["reconstruction_png"], out["reconstruction_pdf"]])
    return table


def render_mask_dynamics(masks_path: str | Path, paths: list[str | Path], title: str, *, time_unit: str = "epoch",
                         channel_labels: Sequence[int] | None = None) -> None:
    """Figure 8 from the masks a training run recorded beside its outputs, with the recorded input images as
    the first column where ``masks.pt`` holds images (a classifier's), or the generated image above each time's masks
    where it holds a generator's outputs (the GAN's inputs are latent codes, not shown)."""
    path = Path(masks_path)
    if not path.is_file():
        raise InputDataError(f"no recorded Top-K masks at {path} (train with texture.mask_dynamics.images > 0)")
    inputs = load_mask_inputs(path)
    if inputs is not None and inputs.dim() != 4:
        inputs = None  # latent codes (the GAN), not images
    elif inputs is not None:
        # The network's normalised inputs, each stretched to [0, 1] for display.
        low = inputs.amin(dim=(1, 2, 3), keepdim=True)
        inputs = (inputs - low) / (inputs.amax(dim=(1, 2, 3), keepdim=True) - low).clamp_min(1e-12)
    outputs = load_mask_outputs(path)
    if outputs is not None:
        # A generator's images as uint8 pixels (gan.train.figure_thumbnail), shown in [0, 1].
        outputs = {time: images.float() / 255 for time, images in outputs.items()}
    save_mask_dynamics(load_masks(path), paths, title=title, channel_labels=channel_labels, time_unit=time_unit, inputs=inputs,
                       outputs=outputs)
