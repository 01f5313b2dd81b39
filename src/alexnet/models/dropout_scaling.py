"""Dropout as §4.2 and the released code do it, and as PyTorch does it.

§4.2: "we use all the neurons but multiply their outputs by 0.5" at test time; in training the
dropped units are zeroed and the kept ones pass unchanged (`layer.cu`, `HiddenSexLayer`: a 0/1
mask in training, `scale(_keep)` otherwise). PyTorch's `nn.Dropout` ("inverted" dropout) scales
the kept units by 1/(1-p) in training and does nothing at test. Test outputs agree; training does
not: with inverted dropout the next layer sees inputs twice as large (four times the squared
norm), which at §5's init and learning rate is enough to make training diverge on a few classes
(docs/paper-facts.md, "Why the paper's init diverges on few classes").
"""

from __future__ import annotations

import torch
from torch import nn

from alexnet.errors import ConfigError

SCALINGS = ("test", "train")  # test: §4.2 and layer.cu; train: PyTorch's inverted dropout


class PaperDropout(nn.Module):
    """Zero each unit with probability p in training, unscaled; multiply by 1-p in eval (§4.2)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0:
            return x
        if self.training:
            keep = torch.rand_like(x) >= self.p  # (B, F) 0/1 mask, as layer.cu's _sexMask
            return x * keep
        return x * (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, scaled at test (§4.2)"


def make_dropout(p: float, scaling: str) -> nn.Module:
    """`scaling="test"`: §4.2's dropout; `"train"`: `nn.Dropout` (inverted)."""
    if not 0.0 <= float(p) < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {p!r}")
    if scaling not in SCALINGS:
        raise ConfigError(f"model.dropout_scaling must be one of {SCALINGS}, got {scaling!r}")
    return PaperDropout(float(p)) if scaling == "test" else nn.Dropout(float(p))
