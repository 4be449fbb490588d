"""FID during training, and the paper code's rollback to the best state when FID stalls.

The paper's ``train.py`` scores the EMA generator every 1,000 iterations (best of three
samplings of 3,000 images); a new best FID saves both networks, the EMA weights and both
optimizers with the iteration; after ``patience`` (10) scores in a row without a new
best it reloads that state, sets the iteration back to it, and perturbs the trained
generator's parameters by uniform noise in ``[-eps_G, eps_G)`` (``--eps_G 1e-4``).

Here the scorer is any ``evaluate(generator_ema, iteration) -> float`` (lower is better)
handed to :func:`topkshape.gan.train.train_fastgan`; :func:`fid_evaluator` builds the
paper's. The best state is kept as CPU copies of plain state dicts, so it rides in the
resumable checkpoint and passes the weights-only loader.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from topkshape.errors import ConfigError

Evaluate = Callable[[nn.Module, int], float]

#: ``gan.eval`` options the training-time scorer reads, and their meaning.
SCORER_OPTIONS = ("samples", "samplings", "sample_batch_size", "generator_mode", "pixel_range", "kid_subset_size",
                  "feature_extractor", "feature_extractor_weights_path")


def cpu_copy(value: Any) -> Any:
    """A deep copy with every tensor detached and on the CPU (state dicts, optimizer states)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return {key: cpu_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(item) for item in value)
    return value


def perturb_parameters(module: nn.Module, eps: float, generator: torch.Generator) -> None:
    """Add ``U[-eps, eps)`` noise to every parameter, as the paper code's ``perturb_params``.

    The noise is drawn on the CPU from ``generator`` (device-independent, resumable).
    """
    if eps <= 0:
        return
    with torch.no_grad():
        for parameter in module.parameters():
            noise = (torch.rand(parameter.shape, generator=generator) - 0.5) * 2 * eps
            parameter.add_(noise.to(parameter.device, parameter.dtype))


def fid_evaluator(real_dir: str | Path, options: Mapping[str, Any], *, im_size: int, resize: str, resample: str = "bicubic", seed: int = 0,
                  classifier: str | Path | None = None, device: str | None = None) -> Evaluate:
    """The paper evaluator as a callback: best FID of ``samplings`` samplings of ``samples`` images.

    Real images are prepared once (the run's size and resize mode, then ``pixel_range``);
    each call writes ``samples`` generated images per sampling (latent seeds ``seed``,
    ``seed + 1``, ...) to a temporary folder and returns the lowest FID.
    """
    from topkshape.gan.fidelity import (
        fid_kid,
        prepare_real_images,
        register_classifier_extractor,
    )
    from topkshape.gan.sampling import check_sampling, generate_samples, map_real_folder

    missing = [key for key in SCORER_OPTIONS if key not in options]
    if missing:
        raise ConfigError(f"gan.eval lacks {missing} for FID during training")
    check_sampling(options["generator_mode"], options["pixel_range"])
    samplings = int(options["samplings"])
    if samplings < 1:
        raise ConfigError(f"gan.eval.samplings must be a positive integer, got {samplings!r}")
    extractor, weights = options["feature_extractor"], options["feature_extractor_weights_path"]
    if extractor == "classifier":
        extractor, weights = "topkshape-classifier", None
        register_classifier_extractor(extractor, classifier)
    work = tempfile.TemporaryDirectory(prefix="topkshape-fid-")
    real = map_real_folder(prepare_real_images(real_dir, Path(work.name) / "real", im_size, resize, resample), options["pixel_range"])

    def evaluate(generator: nn.Module, iteration: int) -> float:
        fids = []
        for index in range(samplings):
            fake = generate_samples(generator, int(options["samples"]), Path(work.name) / f"fake{index}", seed=seed + index,
                                    batch_size=int(options["sample_batch_size"]), device=device,
                                    generator_mode=options["generator_mode"], pixel_range=options["pixel_range"])
            fids.append(fid_kid(fake, real, kid_subset_size=int(options["kid_subset_size"]), feature_extractor=extractor,
                                feature_extractor_weights_path=weights)["fid"])
            for path in fake.iterdir():
                path.unlink()
            fake.rmdir()
        return min(fids)

    evaluate.workdir = work  # type: ignore[attr-defined]  # keeps the temporary folder alive with the callback
    return evaluate
