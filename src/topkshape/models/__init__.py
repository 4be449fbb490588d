"""Model surgery and the architectures the paper uses."""

from topkshape.models.builders import (
    ALEXNET_TOPK_POSITIONS,
    ARCHITECTURES,
    RESNET18_TOPK_POSITIONS,
    VGG16_TOPK_POSITIONS,
    build_model,
    topk_alexnet,
    topk_resnet18,
    topk_resnet18_cifar,
    topk_vgg16,
)
from topkshape.models.cifar_resnet import CifarResNet, cifar_resnet18
from topkshape.models.surgery import MODES, insert_topk, make_topk_layer, topk_layers

__all__ = [
    "ALEXNET_TOPK_POSITIONS",
    "ARCHITECTURES",
    "CifarResNet",
    "MODES",
    "RESNET18_TOPK_POSITIONS",
    "VGG16_TOPK_POSITIONS",
    "build_model",
    "cifar_resnet18",
    "insert_topk",
    "make_topk_layer",
    "topk_alexnet",
    "topk_layers",
    "topk_resnet18",
    "topk_resnet18_cifar",
    "topk_vgg16",
]
