"""The workflow's Figure 2/3/8 jobs: texture synthesis and reconstruction of target images
with and without Top-K responses, measured, and the mask-dynamics grid.

Feature networks: ``vgg19`` (torchvision VGG-19 with average pooling, Gatys layers,
the paper's choice) or ``trained_<subset>`` (the Table 1 baseline of that subset, the
embedded default's offline stand-in; layers are its module names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from topkshape.atomic import atomic_file
from topkshape.errors import InputDataError
from topkshape.texture.features import FeatureTaps, gatys_vgg19, imagenet_normalize
from topkshape.texture.figures import load_masks, save_mask_dynamics, save_panels
from topkshape.texture.structure import edge_correlation, ssim
from topkshape.texture.synthesis import gram_loss, reconstruct, synthesize_texture

def feature_taps(options: dict[str, Any], checkpoint: str | Path | None) -> FeatureTaps:
    """The configured feature network, tapped at the configured layers."""
    if options["feature_net"] == "vgg19":
        net, names = gatys_vgg19(options["weights"])
        layers = [names.get(layer, layer) for layer in options["layers"]]
    else:
        from topkshape.shape_bias.evaluate import load_trained_classifier

        net, _ = load_trained_classifier(checkpoint, None, "topk")
        layers = list(options["layers"])
    return FeatureTaps(net, layers)


def load_targets(folder: str | Path, count: int, size: int) -> list[tuple[str, torch.Tensor]]:
    """The first ``count`` images (sorted) under ``folder``, resized and centre-cropped to ``size``."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not paths:
        raise InputDataError(f"no target images in {folder}")
    targets = []
    for path in paths[:count]:
        with Image.open(path) as image:
            tensor = TF.to_tensor(TF.center_crop(TF.resize(image.convert("RGB"), size), size))
        targets.append((path.stem, tensor.unsqueeze(0)))
    return targets


def run_texture_experiments(options: dict[str, Any], checkpoint, target_dir, out: dict[str, Any], *, device: str | None = None) -> pd.DataFrame:
    """Figure 2 (synthesis w/ and w/o Top-K) and Figure 3 (masked reconstruction), with measures.

    Each result is scored against its target: the Gram-matrix distance over all
    responses (texture match) and two structure measures, SSIM and the correlation
    of Sobel edge maps. The paper's claim: without Top-K responses, structure goes.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    taps = feature_taps(options, checkpoint).to(dev)
    common = dict(topk_fraction=options["topk_fraction"], steps=options["steps"], lr=options["lr"], seed=options["seed"], normalize=imagenet_normalize)
    rows, synthesis_panels, reconstruction_panels = [], [], []
    for name, target in load_targets(target_dir, options["num_targets"], options["image_size"]):
        target = target.to(dev)
        results = {
            ("synthesis", "with_topk"): synthesize_texture(taps, target, remove_topk=False, **common),
            ("synthesis", "without_topk"): synthesize_texture(taps, target, remove_topk=True, **common),
        }
        for mask in ("topk", "non_topk", "identity"):
            results[("reconstruction", mask)] = reconstruct(taps, target, mask=mask, **common)
        for (experiment, variant), (image, history) in results.items():
            rows.append(
                {
                    "target": name,
                    "experiment": experiment,
                    "variant": variant,
                    "objective_final": history[-1],
                    "gram_loss_all_responses": gram_loss(taps, image, target, remove_topk=False, normalize=imagenet_normalize),
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


def render_mask_dynamics(masks_path: str | Path, paths: list[str | Path], title: str) -> None:
    path = Path(masks_path)
    if not path.is_file():
        raise InputDataError(f"no recorded Top-K masks at {path} (train with texture.mask_dynamics.images > 0)")
    save_mask_dynamics(load_masks(path), paths, title=title)
