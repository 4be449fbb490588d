"""Breadth of the any-model path: every torchvision classifier and a list of timm models, with Top-K.

Each model is built with random weights (no download), its Top-K positions resolved from
``--placement`` (``stages`` by default), Top-K inserted at K = ``--fraction`` (exactly K), and a
batch of 2 generated 224-px stimuli run through its own preprocessing, on the CPU. One row per
model: the positions found and their Top-K kinds, the seconds (build, probe, surgery, decisions),
and ok or a one-line reason. Nothing is edited per model: a failure is a failure of the library.

    python benchmarks/model_zoo.py [--source torchvision|timm|all] [--csv FILE] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

import torch

from topkshape.data.synthetic import write_sixteen_category_stimuli
from topkshape.models.placement import probe, resolve_placement
from topkshape.models.zoo import STIMULUS_SIZE, load_model
from topkshape.provenance import _cpu_model as cpu_model
from topkshape.shape_bias.decisions import sixteen_class_indices
from topkshape.shape_bias.evaluate import load_stimuli, model_decisions, with_inference_topk

# At least 50 timm models across families: ResNet, ConvNeXt, EfficientNet/MobileNet, RegNet,
# ViT/DeiT/BEiT, Swin, hybrids and other CNNs. Default configs (224 px unless timm says otherwise).
TIMM_MODELS = (
    # ResNet family
    "resnet18", "resnet50", "resnet10t", "resnet26d", "seresnet50", "resnext50_32x4d", "wide_resnet50_2", "resnetv2_50",
    # ConvNeXt
    "convnext_atto", "convnext_nano", "convnext_tiny", "convnextv2_atto", "convnextv2_nano",
    # EfficientNet and mobile nets
    "efficientnet_b0", "efficientnet_b1", "tf_efficientnet_b0", "efficientnetv2_rw_t", "tf_efficientnetv2_b0",
    "mobilenetv3_large_100", "mobilenetv2_100", "mixnet_s", "ghostnet_100", "rexnet_100",
    # RegNet
    "regnetx_002", "regnetx_016", "regnety_002", "regnety_016", "regnetz_b16",
    # ViT, DeiT, BEiT, CaiT, XCiT
    "vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224", "vit_small_patch32_224",
    "vit_base_patch16_clip_224", "vit_small_patch16_224.augreg_in21k_ft_in1k", "deit_tiny_patch16_224",
    "deit_small_patch16_224", "deit_tiny_distilled_patch16_224", "deit3_small_patch16_224", "beit_base_patch16_224",
    "cait_xxs24_224", "xcit_tiny_12_p16_224", "vit_base_patch16_reg4_gap_256",
    # Swin
    "swin_tiny_patch4_window7_224", "swin_small_patch4_window7_224", "swinv2_tiny_window8_256", "swinv2_cr_tiny_ns_224",
    # Hybrids and other transformers
    "convit_tiny", "coat_lite_tiny", "levit_128", "mobilevit_xs", "mobilevitv2_050", "efficientformer_l1",
    "edgenext_x_small", "poolformer_s12", "crossvit_tiny_240", "twins_svt_small", "pvt_v2_b0", "maxvit_tiny_tf_224",
    "coatnet_0_rw_224", "fastvit_t8", "repvit_m1",
    # Other CNNs
    "densenet121", "inception_v3", "dla34", "hrnet_w18_small", "cspresnet50", "dpn68", "nfnet_l0",
)


def torchvision_models() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def run_one(name: str, stimuli, placement: str, fraction: float) -> dict:
    """Build, place, insert and decide for one model; ok or the first line of what failed."""
    started = time.perf_counter()
    row = {"model": name, "positions": 0, "kinds": "", "seconds": 0.0, "status": "ok"}
    try:
        loaded = load_model(name, "random")
        candidates = probe(loaded.model, loaded.preprocessing.input_size, loaded.prefix_tokens)
        positions = resolve_placement(loaded.model, placement, candidates, arch=loaded.name.arch)
        row["positions"] = len(positions)
        row["kinds"] = ", ".join(f"{kind} x{count}" for kind, count in Counter(p.kind for p in positions).items())
        model = with_inference_topk(loaded.model, positions, fraction, "topk", ties="exact")
        decisions = model_decisions(model, stimuli, batch_size=2, device="cpu", progress=False, preprocess=loaded.preprocessing)
        if len(decisions) != len(stimuli):
            raise RuntimeError(f"{len(decisions)} decisions for {len(stimuli)} stimuli")
        row["input"] = loaded.preprocessing.input_size
    except Exception as error:  # the benchmark reports any failure in one line and goes on
        last = traceback.extract_tb(error.__traceback__)[-1]
        row["status"] = f"{type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''} ({Path(last.filename).name}:{last.lineno})"
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("torchvision", "timm", "all"), default="all")
    parser.add_argument("--placement", default="stages")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--csv", type=Path, help="also write the rows here")
    parser.add_argument("--only", nargs="*", help="these source:name models only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.only or (
        ([f"torchvision:{n}" for n in torchvision_models()] if args.source in ("torchvision", "all") else [])
        + ([f"timm:{n}" for n in TIMM_MODELS] if args.source in ("timm", "all") else []))
    import timm

    print(f"# model zoo: {len(names)} models, placement {args.placement}, K = {args.fraction:.0%} exactly, 2 stimuli at "
          f"{STIMULUS_SIZE} px, random weights; CPU {cpu_model()}, "
          f"{args.threads} threads; torch {torch.__version__}, timm {timm.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        write_sixteen_category_stimuli(Path(tmp) / "s", list(sixteen_class_indices())[:2], per_category=1, progress=False)
        stimuli = load_stimuli(Path(tmp) / "s", STIMULUS_SIZE)
    rows = []
    print("| model | input | positions | Top-K kinds | s | status |\n|---|---|---|---|---|---|")
    for name in names:
        row = run_one(name, stimuli, args.placement, args.fraction)
        rows.append(row)
        print(f"| {row['model']} | {row.get('input', '')} | {row['positions']} | {row['kinds']} | {row['seconds']} | {row['status']} |", flush=True)
    failed = [r for r in rows if r["status"] != "ok"]
    by_source = Counter(r["model"].split(":")[0] for r in rows if r["status"] == "ok")
    print(f"# ok: {dict(by_source)} of {dict(Counter(n.split(':')[0] for n in names))}; failed: {len(failed)}"
          + "".join(f"\n#   {r['model']}: {r['status']}" for r in failed))
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["model", "input", "positions", "kinds", "seconds", "status"])
            writer.writeheader()
            writer.writerows(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
