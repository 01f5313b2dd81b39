"""Fig. 4, left: images with the model's five most probable labels as bars, the true label
(when known) in red."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from alexnet.figures._common import new_figure, save, to_hwc


def predictions_figure(images: Sequence[torch.Tensor] | torch.Tensor, probs: torch.Tensor,
                       names: Sequence[Sequence[str]], path: str | Path, *,
                       true_names: Sequence[str | None] | None = None,
                       columns: int = 4) -> Path:
    """One cell per image (C, H, W; uint8 or float in [0, 1]): the image, and under it the top-k
    probabilities `probs` (N, k) with their class `names` (N lists of k)."""
    n = len(images)
    if n == 0:
        raise ValueError("predictions_figure needs at least one image")
    cols = min(columns, n)
    rows = -(-n // cols)
    k = probs.shape[1]
    fig = new_figure(cols * 2.6, rows * (2.6 + 0.22 * k))
    grid = fig.add_gridspec(rows * 2, cols, height_ratios=[2.4, 0.22 * k + 0.3] * rows)
    for i in range(n):
        r, c = divmod(i, cols)
        ax = fig.add_subplot(grid[2 * r, c])
        ax.imshow(to_hwc(images[i]), interpolation="bilinear")
        ax.set_axis_off()
        truth = true_names[i] if true_names is not None else None
        if truth is not None:
            ax.set_title(str(truth)[:28], fontsize=8)
        bars = fig.add_subplot(grid[2 * r + 1, c])
        p = probs[i].float().cpu().tolist()
        labels = [str(s)[:22] for s in names[i]]
        colors = ["tab:red" if truth is not None and str(s) == str(truth) else "tab:blue"
                  for s in names[i]]
        y = list(range(k))[::-1]
        bars.barh(y, p, color=colors, height=0.7)
        bars.set_yticks(y, labels, fontsize=7)
        bars.set_xlim(0, 1)
        bars.tick_params(axis="x", labelsize=6)
    known = true_names is not None and any(t is not None for t in true_names)
    fig.suptitle(f"top-{k} predictions (Fig. 4, left)" + ("; red = correct label" if known
                                                           else ""), fontsize=10)
    return save(fig, path)
