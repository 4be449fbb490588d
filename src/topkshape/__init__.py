"""topkshape: spatial Top-K sparsity and the pipeline reproducing Li et al., NeurIPS 2023.

The public names load lazily: the workflow's data and config steps import
``topkshape`` without paying for torch and torchvision (seconds per job).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "TopK": "topkshape.ops",
    "TopKMeanReplace": "topkshape.ops",
    "spatial_topk": "topkshape.ops",
    "spatial_topk_mean_replace": "topkshape.ops",
    "topk_count": "topkshape.ops",
    "topk_mask": "topkshape.ops",
    "build_model": "topkshape.models",
    "insert_topk": "topkshape.models",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'topkshape' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
