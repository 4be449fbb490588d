"""Table 2's evaluation of one FastGAN run: FID and KID of generated samples against the real images.

Selection is a config choice: ``final`` scores the EMA generator at the end of training;
``best`` scores every EMA snapshot (``snapshot_every``) and keeps the lowest FID, as the
paper's code does (optimistic: chosen on the set it reports).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from topkshape.atomic import atomic_file
from topkshape.errors import InputDataError
from topkshape.gan.fidelity import fid_kid, prepare_real_images, register_classifier_extractor
from topkshape.gan.train import GENERATOR_EMA, SNAPSHOTS, generate_samples, load_generator

CLASSIFIER_EXTRACTOR = "topkshape-classifier"


def _candidates(run_dir: Path, selection: str) -> list[Path]:
    final = run_dir / GENERATOR_EMA
    if not final.is_file():
        raise InputDataError(f"no trained generator at {final}")
    if selection == "final":
        return [final]
    return sorted((run_dir / SNAPSHOTS).glob("generator_ema_*.pt")) + [final]


def evaluate_run(run_dir: str | Path, real_dir: str | Path, options: dict[str, Any], out_json: str | Path, preview_png: str | Path,
                 *, classifier: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Score the run's generator(s), write ``metrics.json`` and a row of 8 samples."""
    run_dir = Path(run_dir)
    extractor = options["feature_extractor"]
    weights = options["feature_extractor_weights_path"]
    if extractor == "classifier":
        register_classifier_extractor(CLASSIFIER_EXTRACTOR, classifier)
        extractor, weights = CLASSIFIER_EXTRACTOR, None
    size = load_generator(run_dir / GENERATOR_EMA).im_size
    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        real = prepare_real_images(real_dir, Path(tmp) / "real", size)
        for path in _candidates(run_dir, options["selection"]):
            fake = generate_samples(path, options["samples"], Path(tmp) / f"fake_{path.stem}", seed=seed)
            result = fid_kid(fake, real, kid_subset_size=options["kid_subset_size"], feature_extractor=extractor,
                             feature_extractor_weights_path=weights)
            scores.append({"generator": path.relative_to(run_dir).as_posix(), **result})
        chosen = min(scores, key=lambda s: s["fid"]) if options["selection"] == "best" else scores[-1]
        preview = generate_samples(run_dir / chosen["generator"], 8, Path(tmp) / "preview", seed=seed + 1)
        _write_row(sorted(preview.glob("*.png")), preview_png)
    metrics = {**chosen, "selection": options["selection"], "samples": options["samples"], "kid_subset_size": options["kid_subset_size"],
               "feature_extractor": options["feature_extractor"], "candidates": scores}
    with atomic_file(out_json) as tmp_json:
        tmp_json.write_text(json.dumps(metrics, indent=2))
    return metrics


def _write_row(images: list[Path], out: str | Path) -> None:
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in images]
    with atomic_file(out) as tmp:
        Image.fromarray(np.concatenate(arrays, axis=1)).save(tmp, format="PNG")
