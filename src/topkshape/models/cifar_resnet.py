"""The ResNet-18 of the paper's Table 1 code: CIFAR-style, run at 224x224.

It differs from torchvision's ``resnet18``: a 3x3 stride-1 stem with no max-pool,
so ``layer1`` runs at full input resolution (224x224, 64 channels), and the head is
``avg_pool2d(4)`` then a linear layer on the flattened ``512 x 7 x 7`` map instead of a
global average pool. At 224 px that is 54.4 forward GFLOPs per image against
torchvision's 3.6 (15x; ``benchmarks/model_cost.py`` measures it). ``input_size`` sets the linear
layer for other resolutions (the embedded default trains at low resolution).
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity or 1x1 shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """CIFAR-style ResNet with a flattened-map linear head (paper code's Table 1 model)."""

    def __init__(
        self,
        blocks: tuple[int, int, int, int] = (2, 2, 2, 2),
        num_classes: int = 10,
        input_size: int = 224,
        width: int = 64,
    ) -> None:
        super().__init__()
        if input_size % 32 != 0:
            raise ValueError(f"input_size must be a multiple of 32, got {input_size}")
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        planes = [width, 2 * width, 4 * width, 8 * width]
        in_planes = width
        layers = []
        for i, (count, out_planes) in enumerate(zip(blocks, planes)):
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(count):
                stage.append(BasicBlock(in_planes, out_planes, stride if j == 0 else 1))
                in_planes = out_planes
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        grid = input_size // 8 // 4
        self.linear = nn.Linear(planes[3] * grid * grid, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(out.flatten(1))


def cifar_resnet18(num_classes: int = 10, input_size: int = 224, width: int = 64) -> CifarResNet:
    """The paper code's ResNet-18 (no pretrained weights exist for it)."""
    return CifarResNet((2, 2, 2, 2), num_classes=num_classes, input_size=input_size, width=width)
