"""Stylised evaluation sets: AdaIN style transfer applied to an ImageFolder."""

from topkshape.stylize.adain import (
    AdaINStylizer,
    adain_decoder,
    adaptive_instance_normalization,
    mean_std,
    save_random_adain_weights,
    vgg_normalised_encoder,
)
from topkshape.stylize.folder import list_style_images, stylize_image_folder

__all__ = [
    "AdaINStylizer",
    "adain_decoder",
    "adaptive_instance_normalization",
    "list_style_images",
    "mean_std",
    "save_random_adain_weights",
    "stylize_image_folder",
    "vgg_normalised_encoder",
]
