"""Learning curves from a run's metrics.jsonl: error and loss per epoch, lr changes marked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.ticker import MaxNLocator

from alexnet.errors import DataError
from alexnet.figures._common import new_figure, save


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The JSON records of metrics.jsonl (a torn last line, from a crash, is skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist: the run folder has no metrics yet")
    records = []
    lines = path.read_text().splitlines()
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if n == len(lines) - 1:
                continue
            raise DataError(f"{path}, line {n + 1}, is not JSON: {err}") from err
    return records


def _series(records: list[dict[str, Any]], split: str, key: str) -> tuple[list, list]:
    rows = [r for r in records if r.get("split") == split and r.get(key) is not None]
    return [r["epoch"] + 1 for r in rows], [r[key] for r in rows]


def lr_changes(records: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """[(epoch index, new lr)] where the lr differs from the previous epoch's (train records)."""
    rows = [r for r in records if r.get("split") == "train" and r.get("lr") is not None]
    rows = rows or [r for r in records if r.get("split") == "val" and r.get("lr") is not None]
    out, prev = [], None
    for r in sorted(rows, key=lambda r: r["epoch"]):
        if prev is not None and r["lr"] != prev:
            out.append((r["epoch"], r["lr"]))
        prev = r["lr"]
    return out


def learning_curves_figure(records: list[dict[str, Any]], path: str | Path, *,
                           title: str = "learning curves") -> Path:
    """Left: top-1/top-5 error per epoch (validation; training too when recorded). Right: the
    loss (training and validation). Dotted lines where the learning rate changed (§5: ÷10)."""
    fig = new_figure(10, 4)
    err_ax, loss_ax = fig.subplots(1, 2)
    for split, style in (("train", "--"), ("val", "-")):
        for key, color in (("top1_err", "tab:blue"), ("top5_err", "tab:orange")):
            x, y = _series(records, split, key)
            if x:
                err_ax.plot(x, [100 * v for v in y], style, color=color, marker=".",
                            label=f"{split} {key.split('_')[0]}")
        x, y = _series(records, split, "loss")
        if x:
            loss_ax.plot(x, y, style, color="tab:green" if split == "train" else "tab:red",
                         marker=".", label=f"{split} loss")
    for epoch, lr in lr_changes(records):
        for ax in (err_ax, loss_ax):
            ax.axvline(epoch + 0.5, color="grey", linestyle=":", linewidth=1)
        err_ax.annotate(f"lr {lr:g}", (epoch + 0.5, 1), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=7, color="grey")
    err_ax.set_xlabel("epoch")
    err_ax.set_ylabel("error (%)")
    err_ax.set_title("error", fontsize=10)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy loss")
    loss_ax.set_title("loss", fontsize=10)
    for ax in (err_ax, loss_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return save(fig, path)
