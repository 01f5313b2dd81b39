"""Fig. 4, right: for each query image, the training images whose last-hidden-layer (4096-d)
vectors are nearest in Euclidean distance (§6.1)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from alexnet.figures._common import new_figure, save, to_hwc


def neighbors_figure(queries: Sequence[torch.Tensor] | torch.Tensor,
                     neighbours: Sequence[Sequence[torch.Tensor]] | torch.Tensor,
                     path: str | Path, *, distances: torch.Tensor | None = None,
                     labels: Sequence[Sequence[str]] | None = None,
                     query_labels: Sequence[str] | None = None, split: str = "training",
                     by: str = "4096-d feature distance") -> Path:
    """One row per query: the query (first column), then its k neighbours, nearest first.
    Images are (C, H, W), uint8 or float in [0, 1]; `distances` (Q, k) go under the images;
    `by`: what the distance is, for the title."""
    q = len(queries)
    if q == 0:
        raise ValueError("neighbors_figure needs at least one query")
    k = len(neighbours[0])
    fig = new_figure((k + 1) * 1.6 + 0.3, q * 1.8 + 0.5)
    axes = fig.subplots(q, k + 1, squeeze=False)
    for i in range(q):
        axes[i, 0].imshow(to_hwc(queries[i]))
        axes[i, 0].set_title("query" + (f"\n{query_labels[i][:18]}" if query_labels else ""),
                             fontsize=7, color="tab:red")
        for j in range(k):
            ax = axes[i, j + 1]
            ax.imshow(to_hwc(neighbours[i][j]))
            text = []
            if labels is not None:
                text.append(str(labels[i][j])[:18])
            if distances is not None:
                text.append(f"d={float(distances[i, j]):.3g}")
            ax.set_title("\n".join(text), fontsize=7)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{k} nearest {split} images by {by} (Fig. 4, right)",
                 fontsize=10)
    return save(fig, path)
