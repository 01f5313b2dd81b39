"""The confusion matrix as a picture (row-normalised: each true class sums to 1)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from alexnet.figures._common import new_figure, save


def confusion_figure(matrix: torch.Tensor, classes: Sequence[str], path: str | Path, *,
                     title: str = "confusion matrix (rows: true class, normalised)") -> Path:
    """Draw the (C, C) counts (rows true, columns predicted); numbers written when C <= 20."""
    cm = torch.as_tensor(matrix).double()
    c = cm.shape[0]
    rates = cm / cm.sum(1, keepdim=True).clamp_min(1)
    size = min(3.0 + 0.45 * c, 14.0)
    fig = new_figure(size + 1.2, size)
    ax = fig.add_subplot()
    im = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8)
    if c <= 30:
        ticks = list(range(c))
        short = [str(s)[:16] for s in classes]
        ax.set_xticks(ticks, short, rotation=90, fontsize=7)
        ax.set_yticks(ticks, short, fontsize=7)
    if c <= 20:
        for i in range(c):
            for j in range(c):
                if cm[i, j] > 0:
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=6,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=10)
    return save(fig, path)
