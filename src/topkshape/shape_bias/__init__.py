"""The cue-conflict shape-bias benchmark (Geirhos et al. 2019), as model-vs-human computes it.

``analysis``: shape bias overall and per category from raw decision CSVs.
``decisions``: 1000-class ImageNet probabilities to the 16 benchmark categories.
``evaluate``: run a classifier over cue-conflict images and write model-vs-human's raw CSV.
"""

from topkshape.shape_bias.analysis import (
    RAW_COLUMNS,
    bootstrap_shape_bias,
    class_shape_biases,
    read_raw_csv,
    shape_bias,
    shape_bias_per_category,
    texture_category,
)

__all__ = [
    "RAW_COLUMNS",
    "bootstrap_shape_bias",
    "class_shape_biases",
    "read_raw_csv",
    "shape_bias",
    "shape_bias_per_category",
    "texture_category",
]
