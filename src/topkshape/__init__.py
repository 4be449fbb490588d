"""topkshape: spatial Top-K sparsity and the pipeline reproducing Li et al., NeurIPS 2023."""

from topkshape.models import build_model, insert_topk
from topkshape.ops import (
    TopK,
    TopKMeanReplace,
    spatial_topk,
    spatial_topk_mean_replace,
    topk_count,
    topk_mask,
)

__version__ = "0.1.0"

__all__ = [
    "TopK",
    "TopKMeanReplace",
    "__version__",
    "build_model",
    "insert_topk",
    "spatial_topk",
    "spatial_topk_mean_replace",
    "topk_count",
    "topk_mask",
]
