"""What every AlexNet variant offers: forward, hidden-layer embeddings, conv1, optimizer
groups."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from alexnet.errors import ConfigError

# The layers `embed` returns, flattened (sizes at 224 for the paper's widths): conv5 after its
# ReLU, before pool5 (256·13·13 = 43264); pool5 (with `owt`'s adaptive pool; 256·6·6 = 9216);
# fc6 and fc7 after their ReLU, before their dropout (4096). fc7 is §6.1's feature vector.
EMBED_LAYERS = ("conv5", "pool5", "fc6", "fc7")
DEFAULT_LAYER = "fc7"
# activations that belong to a hidden fc layer's output (the paper family's `activation`)
_ACTIVATIONS = (nn.ReLU, nn.Tanh)


class AlexNetBase(nn.Module):
    """`features` (conv part) -> flatten -> `classifier` (fc part), torchvision-style names.

    Subclasses set `self.config` (rebuilds the model through `create_model(**config)`) and
    `towers`. `embed` finds its layers from the modules: conv5 is `features` up to its last
    max-pool, fc6/fc7 are `classifier` up to the first/second Linear and its activation.
    """

    towers: int = 1
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

    def embed(self, x: torch.Tensor, layer: str = DEFAULT_LAYER) -> torch.Tensor:
        """A hidden layer's output, flattened to (B, D): `fc7` (default; after ReLU, before
        dropout: §6.1's 4096-d features), `fc6` (likewise, 4096), `pool5` (9216 at 224) or
        `conv5` (after its ReLU, before pool5; 43264 at 224)."""
        if layer not in EMBED_LAYERS:
            raise ConfigError(f"unknown layer {layer!r}; choose one of {', '.join(EMBED_LAYERS)}")
        if layer == "conv5":
            return torch.flatten(self.features[: self._last_pool()](x), 1)
        x = torch.flatten(self.avgpool(self.features(x)), 1)  # pool5: (B, 9216) at 224
        if layer == "pool5":
            return x
        return self.classifier[: self._hidden_depth(1 if layer == "fc6" else 2)](x)

    def _last_pool(self) -> int:
        """Index of the last max-pool in `features` (pool5)."""
        return max(i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d))

    def _hidden_depth(self, k: int) -> int:
        """How many `classifier` modules give the k-th fc layer's output: through its Linear
        and the activation right after it (any dropout before the Linear is included, the one
        after it is not): 5 for the paper's fc7 (fc6, relu6, drop6, fc7, relu7)."""
        seen = 0
        mods = list(self.classifier)
        for i, m in enumerate(mods):
            if isinstance(m, nn.Linear):
                seen += 1
                if seen == k:
                    end = i + 1
                    while end < len(mods) and isinstance(mods[end], _ACTIVATIONS):
                        end += 1
                    return end
        raise ConfigError(f"{type(self).__name__} has {seen} fc layers, fewer than {k}")

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
