"""Model-vs-human's 17 OOD datasets by name, and the human decision files pinned for each.

What the workflow plans with (the Snakefile's rules, config checks): kept apart from
:mod:`topkshape.robustness.ood` so that planning never imports torch, pandas or the models.
"""

from __future__ import annotations

import json
from importlib import resources

from topkshape.errors import InputDataError

OOD_DATASETS = (
    "colour", "contrast", "high-pass", "low-pass", "phase-scrambling", "power-equalisation", "false-colour",
    "rotation", "eidolonI", "eidolonII", "eidolonIII", "uniform-noise", "sketch", "stylized", "edge",
    "silhouette", "cue-conflict",
)
"""The 17 datasets of Geirhos et al. (2021), as model-vs-human names them."""
HUMAN_MANIFEST = "ood_human_decisions_sha256.json"
HUMAN_BASE_URL = "https://raw.githubusercontent.com/bethgelab/model-vs-human/79ed7cd1d9ac3a114e71b6638f0a98bdd627316c/raw-data"


def human_files(dataset: str) -> dict[str, str]:
    """The human observers' raw-decision files of ``dataset`` and their SHA-256, shipped in the package
    (model-vs-human commit 79ed7cd, ``raw-data/<dataset>/``)."""
    if dataset not in OOD_DATASETS:
        raise InputDataError(f"unknown OOD dataset {dataset!r}; choose from {list(OOD_DATASETS)}")
    files = json.loads(resources.files("topkshape.data").joinpath(HUMAN_MANIFEST).read_text())["files"]
    return {key.split("/", 1)[1]: digest for key, digest in files.items() if key.split("/", 1)[0] == dataset}
