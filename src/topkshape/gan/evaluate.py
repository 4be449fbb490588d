"""Table 2's evaluation of one FastGAN run: FID and KID of generated samples against the real images.

Selection is a config choice: ``final`` scores the EMA generator at the end of training;
``best`` scores every EMA snapshot (``snapshot_every``) and keeps the lowest FID, as the
paper's code does (optimistic: chosen on the set it reports).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from topkshape.atomic import atomic_file
from topkshape.checkpoint import load_torch_file
from topkshape.errors import ConfigError, InputDataError
from topkshape.gan.fidelity import (
    fid_kid,
    prepare_real_images,
    register_classifier_extractor,
)
from topkshape.gan.sampling import map_real_folder
from topkshape.gan.train import GENERATOR_EMA, GENERATOR_INIT, SNAPSHOTS, GanSettings, generate_samples

CLASSIFIER_EXTRACTOR = "topkshape-classifier"


def _candidates(run_dir: Path, selection: str) -> list[Path]:
    final = run_dir / GENERATOR_EMA
    if not final.is_file():
        raise InputDataError(f"no trained generator at {final}")
    if selection == "final":
        return [final]
    snapshots = sorted((run_dir / SNAPSHOTS).glob("generator_ema_*.pt"))
    # The last snapshot is usually the final generator itself (iterations a multiple of
    # snapshot_every): scoring it twice, with the same sampling seeds, would only repeat its FID.
    if snapshots and _same_weights(snapshots[-1], final):
        return snapshots
    return snapshots + [final]


def _same_weights(first: Path, second: Path) -> bool:
    a, b = (load_torch_file(path, "generator") for path in (first, second))
    state_a, state_b = (state.get("generator") if isinstance(state, dict) else None for state in (a, b))
    if not isinstance(state_a, dict) or not isinstance(state_b, dict) or state_a.keys() != state_b.keys():
        return False
    return all(torch.equal(state_a[key], state_b[key]) for key in state_a)


def run_settings(generator_path: str | Path) -> GanSettings:
    """The settings a generator file was trained with (its image size and resize mode among them)."""
    state = load_torch_file(generator_path, "generator")
    try:
        return GanSettings(**state["settings"])
    except (KeyError, TypeError, ConfigError) as error:
        raise InputDataError(f"{generator_path} is not a generator_ema.pt written by train_fastgan: {error}") from None


def prepare_run_reals(run_dir: str | Path, real_dir: str | Path, out_dir: str | Path) -> Path:
    """The real images as the run's training saw them: its ``im_size`` and its own ``resize`` mode.

    FID/KID then compare like with like: a generator trained on stretched images is not
    scored against centre crops (or the other way round).
    """
    settings = run_settings(Path(run_dir) / GENERATOR_EMA)
    return prepare_real_images(real_dir, out_dir, settings.im_size, settings.resize, settings.resample)


def evaluate_run(run_dir: str | Path, real_dir: str | Path, options: dict[str, Any], out_json: str | Path, preview_png: str | Path,
                 *, classifier: str | Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Score the run's generator(s), write ``metrics.json`` and a row of 8 samples."""
    run_dir = Path(run_dir)
    extractor = options["feature_extractor"]
    weights = options["feature_extractor_weights_path"]
    if extractor == "classifier":
        register_classifier_extractor(CLASSIFIER_EXTRACTOR, classifier)
        extractor, weights = CLASSIFIER_EXTRACTOR, None
    if not (run_dir / GENERATOR_EMA).is_file():
        raise InputDataError(f"no trained generator at {run_dir / GENERATOR_EMA}")
    samplings = int(options.get("samplings", 1))
    sampling = {"batch_size": int(options.get("sample_batch_size", 50)), "generator_mode": options.get("generator_mode", "eval"),
                "pixel_range": options.get("pixel_range", "full")}
    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        real = map_real_folder(prepare_run_reals(run_dir, real_dir, Path(tmp) / "real"), sampling["pixel_range"])
        for path in _candidates(run_dir, options["selection"]):
            # The paper's evaluator keeps the lowest FID of `samplings` samplings (seeds seed, seed + 1, ...).
            tries = []
            for index in range(samplings):
                fake = generate_samples(path, options["samples"], Path(tmp) / f"fake_{path.stem}_{index}", seed=seed + index, **sampling)
                tries.append(fid_kid(fake, real, kid_subset_size=options["kid_subset_size"], feature_extractor=extractor,
                                     feature_extractor_weights_path=weights))
                shutil.rmtree(fake)
            scores.append({"generator": path.relative_to(run_dir).as_posix(), **min(tries, key=lambda r: r["fid"])})
        # The untrained generator, measured as the first sampling above: a final FID means little without it.
        initial = {}
        if (run_dir / GENERATOR_INIT).is_file():
            fake = generate_samples(run_dir / GENERATOR_INIT, options["samples"], Path(tmp) / "fake_init", seed=seed, **sampling)
            at_init = fid_kid(fake, real, kid_subset_size=options["kid_subset_size"], feature_extractor=extractor,
                              feature_extractor_weights_path=weights)
            initial = {"fid_init": at_init["fid"], "kid_x1e3_init": at_init["kid_x1e3"]}
        chosen = min(scores, key=lambda s: s["fid"]) if options["selection"] == "best" else scores[-1]
        preview = generate_samples(run_dir / chosen["generator"], 8, Path(tmp) / "preview", seed=seed + 1)
        _write_row(sorted(preview.glob("*.png")), preview_png)
    metrics = {**chosen, **initial, "selection": options["selection"], "samples": options["samples"], "kid_subset_size": options["kid_subset_size"],
               "feature_extractor": options["feature_extractor"], "samplings": samplings, "sample_batch_size": sampling["batch_size"],
               "generator_mode": sampling["generator_mode"], "pixel_range": sampling["pixel_range"], "candidates": scores}
    with atomic_file(out_json) as tmp_json:
        tmp_json.write_text(json.dumps(metrics, indent=2))
    return metrics


def _write_row(images: list[Path], out: str | Path) -> None:
    arrays = [np.asarray(Image.open(p).convert("RGB")) for p in images]
    with atomic_file(out) as tmp:
        Image.fromarray(np.concatenate(arrays, axis=1)).save(tmp, format="PNG")
