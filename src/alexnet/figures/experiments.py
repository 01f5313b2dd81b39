"""The paper's experiments as figures, from plain numbers (`alexnet experiment`): Fig. 1's
training error against epochs, two conditions side by side (LRN, test views), and the error of
an ensemble against its size. Errors are fractions in [0, 1], drawn as percentages."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from alexnet.errors import DataError
from alexnet.figures._common import new_figure, save


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return math.nan, 0.0
    m = sum(vals) / len(vals)
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return m, s


def training_error_figure(curves: Sequence[dict[str, Any]], path: str | Path, *,
                          threshold: float = 0.25, title: str = "") -> Path:
    """Fig. 1 drawn as the paper draws it: training error rate against epochs, a solid line
    for each ReLU curve and a dashed one for each tanh curve, and the threshold's line.

    `curves`: {"label", "epochs": [...], "errors": [...], "dashed": bool, "color": optional,
    "width": optional line width (thin lines for single seeds)}.
    """
    if not curves:
        raise DataError("no training curves to draw")
    fig = new_figure(6, 4.5)
    ax = fig.subplots()
    for c in curves:
        ax.plot(c["epochs"], c["errors"], "--" if c.get("dashed") else "-",
                color=c.get("color", "black"), linewidth=c.get("width", 1.8),
                alpha=c.get("alpha", 1.0), label=c.get("label"))
    ax.axhline(threshold, color="grey", linestyle=":", linewidth=1)
    ax.annotate(f"{threshold:.0%}", (1, threshold), xycoords=("axes fraction", "data"),
                ha="right", va="bottom", fontsize=8, color="grey")
    ax.set_xlabel("Epochs")
    ax.set_ylabel("Training error rate")
    ax.set_ylim(0, max(0.8, max(max(c["errors"], default=0) for c in curves) + 0.02))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if any(c.get("label") for c in curves):
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return save(fig, path)


def conditions_figure(conditions: Sequence[dict[str, Any]], path: str | Path, *,
                      ylabel: str = "top-1 error (%)", title: str = "") -> Path:
    """Two or more conditions side by side: each seed's error as a dot, the mean ± std over
    seeds as a bar with error bars, the paper's error (when given) as a red diamond.

    `conditions`: {"label", "values": [per-seed errors], "paper": float or None}.
    """
    if not conditions:
        raise DataError("no conditions to draw")
    fig = new_figure(1.8 + 1.4 * len(conditions), 4)
    ax = fig.subplots()
    for i, c in enumerate(conditions):
        m, s = _mean_std(c["values"])
        ax.bar(i, 100 * m, yerr=100 * s, width=0.6, color="lightsteelblue", capsize=6,
               label="ours: mean ± std" if i == 0 else None)
        ax.plot([i] * len(c["values"]), [100 * v for v in c["values"]], "o", color="navy",
                markersize=4, label="ours: each seed" if i == 0 else None)
        if c.get("paper") is not None:
            ax.plot(i, 100 * c["paper"], "D", color="tab:red",
                    label="paper" if not any(d.get("paper") is not None
                                             for d in conditions[:i]) else None)
    ax.set_xticks(range(len(conditions)), [c["label"] for c in conditions])
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return save(fig, path)


def ensemble_figure(sizes: Sequence[int], errors: Sequence[float], path: str | Path, *,
                    members: Sequence[float] = (), paper: dict[int, float] | None = None,
                    title: str = "") -> Path:
    """§6: top-1 error of the averaged softmax of the first k nets against k; the single
    nets' errors as dots at k = 1; the paper's errors (e.g. {1: 0.407, 5: 0.381}) as red
    diamonds."""
    if not sizes:
        raise DataError("no ensemble sizes to draw")
    fig = new_figure(5, 4)
    ax = fig.subplots()
    ax.plot(list(sizes), [100 * e for e in errors], "-o", color="navy",
            label="ours: first k nets averaged")
    if members:
        ax.plot([1] * len(members), [100 * e for e in members], "o", color="lightsteelblue",
                markersize=5, label="ours: each net alone")
    if paper:
        ax.plot(list(paper), [100 * e for e in paper.values()], "D", color="tab:red",
                label="paper (ILSVRC-2012 val)")
    ax.set_xlabel("nets averaged (k)")
    ax.set_ylabel("top-1 error (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return save(fig, path)
