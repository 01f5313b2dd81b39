"""Shared helpers: a pyplot-free Figure (Agg canvas) and images as HWC arrays for imshow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from alexnet.atomic import atomic_open


def new_figure(width: float, height: float) -> Figure:
    """A Figure on the Agg canvas (no global pyplot state, no display)."""
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save(fig: Figure, path: str | Path) -> Path:
    """The figure as a PNG, written atomically (`alexnet.atomic`)."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    return Path(path)


def to_hwc(image: torch.Tensor) -> np.ndarray:
    """A (C, H, W) image (uint8, or float in [0, 1]) as an (H, W, 3) float array for imshow."""
    x = image.detach().cpu()
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    elif x.shape[0] != 3:
        x = x.mean(0, keepdim=True).expand(3, -1, -1)
    return x.clamp(0, 1).permute(1, 2, 0).numpy()
