"""Fig. 3: the conv1 kernels, one row block per tower (paper: 48 on GPU 1, 48 on GPU 2)."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid

from alexnet.figures._common import new_figure, save, to_hwc


def conv1_kernels_figure(weight: torch.Tensor, path: str | Path, *, towers: int = 1,
                         columns: int = 16, title: str | None = None) -> Path:
    """Draw conv1's weight (K, C, kh, kw) as a grid of kernels, each min-max scaled on its own.

    Two-tower models: channels [0:K/2] are tower 1 and [K/2:K] tower 2 (§3.2), each its own
    row block, as in Fig. 3 (tower 1's kernels come out largely colour-agnostic, tower 2's
    colour-specific).
    """
    w = weight.detach().float().cpu()  # (K, C, kh, kw)
    if w.shape[1] not in (1, 3):
        w = w.mean(1, keepdim=True)
    blocks = torch.chunk(w, towers, dim=0) if towers > 1 else (w,)
    rows = [max(1, -(-len(b) // columns)) for b in blocks]
    fig = new_figure(columns * 0.55 + 0.5, sum(rows) * 0.55 + 0.8 * len(blocks))
    axes = fig.subplots(len(blocks), 1, squeeze=False, height_ratios=rows)[:, 0]
    start = 0
    for i, (ax, block) in enumerate(zip(axes, blocks, strict=True)):
        grid = make_grid(block, nrow=columns, padding=1, normalize=True, scale_each=True,
                         pad_value=1.0)  # (3, H, W) in [0, 1]
        ax.imshow(to_hwc(grid), interpolation="nearest")
        ax.set_axis_off()
        label = f"tower {i + 1} (GPU {i + 1}): " if len(blocks) > 1 else ""
        ax.set_title(f"{label}kernels {start}-{start + len(block) - 1}", fontsize=9)
        start += len(block)
    k, c, kh, kw = weight.shape
    fig.suptitle(title or f"conv1: {k} kernels of size {kh}×{kw}×{c} (Fig. 3)", fontsize=10)
    return save(fig, path)
