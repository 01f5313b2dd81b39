"""What every AlexNet variant offers: forward, the 4096-d embedding, conv1, optimizer groups."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class AlexNetBase(nn.Module):
    """`features` (conv part) -> flatten -> `classifier` (fc part), torchvision-style names.

    Subclasses set `self.config` (rebuilds the model through `create_model(**config)`),
    `towers`, and `embed_depth`: how many `classifier` modules give fc7 after its ReLU.
    """

    towers: int = 1
    embed_depth: int
    features: nn.Sequential
    classifier: nn.Sequential
    config: dict[str, Any]

    def __init__(self) -> None:
        super().__init__()
        self.avgpool: nn.Module = nn.Identity()  # `owt` pools adaptively to 6×6, as torchvision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))  # (B, 256, 6, 6) at 224
        x = torch.flatten(x, 1)  # (B, 9216)
        return self.classifier(x)  # (B, num_classes): logits, softmax lives in the loss

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The last hidden layer (fc7 after ReLU, before dropout), (B, 4096): §6.1's features."""
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.classifier[: self.embed_depth](x)

    @property
    def conv1(self) -> nn.Conv2d:
        """The first convolution, (96, C, 11, 11) for the paper: what Fig. 3 shows."""
        return next(m for m in self.features.modules() if isinstance(m, nn.Conv2d))

    def optim_groups(self) -> list[dict[str, Any]]:
        """One parameter group per tensor with its learning-rate and weight-decay multipliers."""
        return [{"name": name, "params": [p], "lr_mult": 1.0, "wd_mult": 1.0}
                for name, p in self.named_parameters()]

    @property
    def num_classes(self) -> int:
        return self.config["num_classes"]

    @property
    def in_channels(self) -> int:
        return self.config["in_channels"]
