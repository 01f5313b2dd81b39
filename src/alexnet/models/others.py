"""Two widely used relatives of the paper's network: torchvision's (`owt`) and D2L's (`d2l`)."""

from __future__ import annotations

from torch import nn

from alexnet.errors import ConfigError
from alexnet.models.base import AlexNetBase


class TorchvisionAlexNet(AlexNetBase):
    """`owt`: torchvision's AlexNet, from "One weird trick" (Krizhevsky 2014): 64-192-384-256-256
    kernels, one tower, no LRN, adaptive average pool to 6×6, dropout before fc6 and fc7.

    Modules, names and shapes equal `torchvision.models.alexnet()`, so its pretrained
    `state_dict` loads unchanged (61,100,840 parameters at 1000 classes).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, *, dropout: float = 0.5,
                 image_size: int = 224) -> None:
        super().__init__()
        if image_size < 63:
            raise ConfigError(f"image_size {image_size} is too small for 'owt'; use 63 or more")
        self.config = {"name": "owt", "num_classes": num_classes, "in_channels": in_channels,
                       "dropout": dropout, "image_size": image_size}
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),  # (B, 64, 55, 55)
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 64, 27, 27)
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 192, 13, 13)
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 256, 6, 6)
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        # torchvision keeps PyTorch's default (Kaiming-uniform) initialisation.


class D2LAlexNet(AlexNetBase):
    """`d2l`: Dive into Deep Learning's AlexNet for Fashion-MNIST resized to 224 (one tower, no
    LRN, conv1 padding 1 so 224 -> 54, fc6 from 256·5·5 = 6400 inputs, Xavier-uniform init)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, *, dropout: float = 0.5,
                 image_size: int = 224) -> None:
        super().__init__()
        self.config = {"name": "d2l", "num_classes": num_classes, "in_channels": in_channels,
                       "dropout": dropout, "image_size": image_size}
        s = (image_size + 2 - 11) // 4 + 1  # conv1: 54 at 224
        for _ in range(3):
            s = (s - 3) // 2 + 1  # three 3/2 max-pools: 26, 12, 5
        if s < 1:
            raise ConfigError(f"image_size {image_size} is too small for 'd2l'; use 67 or more")
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 96, 26, 26)
            nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 256, 12, 12)
            nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 256, 5, 5)
        )
        self.classifier = nn.Sequential(
            nn.Linear(256 * s * s, 4096), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():  # d2l initialises with Xavier-uniform weights
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
