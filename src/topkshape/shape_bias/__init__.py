"""The cue-conflict shape-bias benchmark (Geirhos et al. 2019), as model-vs-human computes it.

``analysis``: shape bias overall and per category from raw decision CSVs.
``decisions``: 1000-class ImageNet probabilities to the 16 benchmark categories.
``evaluate``: run a classifier over cue-conflict images and write model-vs-human's raw CSV.

The analysis names load lazily: the Snakefile imports ``topkshape.shape_bias.tags`` to plan, and
importing this package must not cost it pandas and SciPy (half a second per `snakemake` call).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "RAW_COLUMNS",
    "bootstrap_shape_bias",
    "class_shape_biases",
    "read_raw_csv",
    "shape_bias",
    "shape_bias_per_category",
    "texture_category",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("topkshape.shape_bias.analysis"), name)
    raise AttributeError(f"module 'topkshape.shape_bias' has no attribute {name!r}")
