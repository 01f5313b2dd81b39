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


def ablation_figure(lines: Sequence[dict[str, Any]], bars: Sequence[dict[str, Any]],
                    path: str | Path, *, ylabel: str = "top-1 error (%)",
                    title: str = "") -> Path:
    """An ablation in two panels: curves against epochs on the left (`lines`: {"label",
    "epochs", "errors", "dashed": bool, "color"}), each condition's final top-1 error on the
    right (`bars`: {"label", "values": [per seed]}, the mean as a bar, each seed as a dot)."""
    if not bars:
        raise DataError("no conditions to draw")
    fig = new_figure(10, 4.2)
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    for c in lines:
        if c["epochs"]:
            left.plot(c["epochs"], [100 * e for e in c["errors"]],
                      "--" if c.get("dashed") else "-", color=c.get("color", "black"),
                      linewidth=1.6, label=c.get("label"))
    left.set_xlabel("Epochs")
    left.set_ylabel(ylabel)
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.grid(alpha=0.3)
    if any(c["epochs"] for c in lines):
        left.legend(fontsize=7)
    for i, b in enumerate(bars):
        m, s = _mean_std(b["values"])
        right.bar(i, 100 * m, yerr=100 * s, width=0.6, color=f"C{i}", alpha=0.35, capsize=6)
        right.plot([i] * len(b["values"]), [100 * v for v in b["values"]], "o", color=f"C{i}",
                   markersize=4)
    right.set_xticks(range(len(bars)), [b["label"] for b in bars], fontsize=8)
    right.set_ylabel("final validation top-1 error (%)")
    finite = [v for b in bars for v in b["values"] if v is not None and math.isfinite(v)]
    if finite:
        right.set_ylim(max(0.0, 100 * min(finite) - 5), 100 * max(finite) + 3)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def chroma_figure(runs: Sequence[dict[str, Any]], path: str | Path, *, title: str = "") -> Path:
    """Fig. 3 as numbers: each run's conv1 kernels' chroma, tower 1 and tower 2 side by side
    (a dot per kernel, the tower's mean as a bar). `runs`: {"label", "towers": [[chroma of
    tower 1's kernels], [tower 2's]]}."""
    if not runs:
        raise DataError("no runs with two towers to draw")
    fig = new_figure(1.5 + 1.6 * len(runs), 4)
    ax = fig.subplots()
    ticks, names = [], []
    for i, run in enumerate(runs):
        for t, values in enumerate(run["towers"]):
            x = 3 * i + t
            m, _ = _mean_std(values)
            ax.bar(x, m, width=0.7, color=f"C{t}", alpha=0.3,
                   label=f"tower {t + 1}" if i == 0 else None)
            jitter = [x + 0.25 * ((j % 9) / 8 - 0.5) for j in range(len(values))]
            ax.plot(jitter, values, ".", color=f"C{t}", markersize=3)
        ticks.append(3 * i + 0.5)
        names.append(run["label"])
    ax.axhline(math.sqrt(2 / 3), color="grey", linestyle=":", linewidth=1)
    ax.annotate("random weights", (1, math.sqrt(2 / 3)), xycoords=("axes fraction", "data"),
                ha="right", va="bottom", fontsize=7, color="grey")
    ax.set_xticks(ticks, names, fontsize=8)
    ax.set_ylabel("kernel chroma (0 grey, 1 opponent colours)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return save(fig, path)


def precision_figure(bars: dict[str, Sequence[float]], chance: Sequence[float],
                     path: str | Path, *, k: int = 6, title: str = "") -> Path:
    """Precision@k of several searches (`bars`: label -> per-run values) as bars with each run
    as a dot, and chance as a dotted line."""
    if not bars:
        raise DataError("no searches to draw")
    fig = new_figure(1.8 + 1.3 * len(bars), 4)
    ax = fig.subplots()
    for i, values in enumerate(bars.values()):
        m, s = _mean_std(values)
        ax.bar(i, m, yerr=s, width=0.6, color=f"C{i}", alpha=0.4, capsize=5)
        ax.plot([i] * len(values), list(values), "o", color=f"C{i}", markersize=4)
    c, _ = _mean_std(chance)
    if math.isfinite(c):
        ax.axhline(c, color="grey", linestyle=":", linewidth=1)
        ax.annotate("chance", (1, c), xycoords=("axes fraction", "data"), ha="right",
                    va="bottom", fontsize=7, color="grey")
    ax.set_xticks(range(len(bars)), list(bars), fontsize=8)
    ax.set_ylabel(f"precision@{k} (same label as the query)")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    return save(fig, path)
