"""What Top-K neurons encode (paper Figures 2, 3, 8): texture synthesis with and without
Top-K responses, masked reconstruction, structure measures and the mask-dynamics figure.

The Top-K mask recorder that the trainers use lives in ``topkshape.mask_recording``.
"""

from topkshape.texture.features import (
    GATYS_VGG19_LAYERS,
    FeatureTaps,
    gatys_vgg19,
    imagenet_normalize,
)
from topkshape.texture.figures import save_mask_dynamics, save_panels
from topkshape.texture.structure import edge_correlation, ssim
from topkshape.texture.synthesis import (
    gram_loss,
    gram_matrix,
    masked_target,
    reconstruct,
    synthesize_texture,
    zero_topk,
)

__all__ = [
    "GATYS_VGG19_LAYERS",
    "FeatureTaps",
    "edge_correlation",
    "gatys_vgg19",
    "gram_loss",
    "gram_matrix",
    "imagenet_normalize",
    "masked_target",
    "reconstruct",
    "save_mask_dynamics",
    "save_panels",
    "ssim",
    "synthesize_texture",
    "zero_topk",
]
