"""Shared helpers for tests that run the Snakemake workflow in a temporary copy."""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
WORKFLOW_FILES = ("Snakefile", "rules", "workflow_scripts", "config.yaml", "config", "profiles", "environment.yml", "report")

# The default configuration shrunk so that a training target takes seconds (write_config keys).
TINY_DEFAULT = dict(
    data__synthetic__train_per_class=6,
    data__synthetic__val_per_class=2,
    data__synthetic__diagnostic_per_class=2,
    data__synthetic__image_size=32,
    stylize__per_class=2,
    train__image_size=32,
    train__epochs=1,
    train__width=4,
    train__batch_size=8,
    texture__image_size=32,
    # The atlas job (a random ImageNet classifier on 16 generated stimuli): SqueezeNet, the smallest torchvision net.
    shape_bias__atlas=[{"name": "tiny_random", "model": "torchvision:squeezenet1_1", "weights": "random", "placement": "stages"}],
    shape_bias__atlas_stimuli={"source": "generated", "per_category": 1},
    # Table 1b on 3 corruptions x 2 severities of one image per class (glass_blur's JIT compile alone takes ~8 s).
    robustness__corruptions={"per_class": 1, "severities": [1, 5], "names": ["gaussian_noise", "defocus_blur", "contrast"]},
)


def copy_workflow(dest: Path) -> Path:
    """A fresh working directory holding the workflow (no outputs, no .snakemake)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SNAKEMAKE), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def write_config(path: Path, base: str = "config.yaml", **changes) -> Path:
    """Write ``base`` with nested changes given as dotted keys ``data__synthetic__seed=1``."""
    config = yaml.safe_load((ROOT / base).read_text())
    for dotted, value in changes.items():
        node = config
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(config))
    return path


def tiny_jpeg(seed: int, size=(40, 30)) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def make_fake_imagenet(root: Path, wnids: list[str], train_per_class: int = 3, val_per_class: int = 2) -> Path:
    """ILSVRC2012-like tree: train/<wnid>/*.JPEG, flat val/ with LOC_val_solution.csv."""
    (root / "val").mkdir(parents=True)
    lines = ["ImageId,PredictionString"]
    counter = 0
    for i, wnid in enumerate(wnids):
        folder = root / "train" / wnid
        folder.mkdir(parents=True)
        for j in range(train_per_class):
            (folder / f"{wnid}_{j}.JPEG").write_bytes(tiny_jpeg(1000 * i + j))
        for j in range(val_per_class):
            counter += 1
            stem = f"ILSVRC2012_val_{counter:08d}"
            (root / "val" / f"{stem}.JPEG").write_bytes(tiny_jpeg(10_000 + counter))
            lines.append(f"{stem},{wnid} 1 1 20 20 ")
    (root / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    return root


def snakemake_record_name(relative: str) -> str:
    """Snakemake's job-record file name for an output: its path in URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(relative.encode()).decode().rstrip("=")
