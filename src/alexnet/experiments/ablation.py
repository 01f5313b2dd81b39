"""The paper's architecture ablations on the `paper` net, as one pattern: a baseline (the
`paper` recipe) and one or more conditions that change a single model option, each trained
with the same seeds (the same images in the same order), compared by final validation error.

Used by `lrn` (§3.3), `overlap` (§3.4), `towers` (§3.2), `dropout` (§4.2) and `depth` (§7).
The paper states each result as a difference ("reduces the top-1 and top-5 error rates by
1.4% and 1.2%"), so the effect per seed is the ablated net's top-1 error minus the paper
net's: positive where the paper's choice helps.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alexnet.evaluation.checkpoints_eval import evaluate_checkpoints
from alexnet.experiments.arms import Arm, final_val, read_records
from alexnet.experiments.spec import ArmRun, Outcome, Plan
from alexnet.experiments.verdict import verdict
from alexnet.figures.experiments import ablation_figure

# QUICK (2 CPU cores, ~3 min per arm on a 5,000-image folder): the `paper` recipe's QUICK
# mode (64-px crops of 73-px images, batch 32), but whole epochs and ten of them so that the
# nets start to fit their training set, with the rate ÷10 for the last two (§5's reduction,
# at fixed epochs so that every arm gets the same number of updates).
QUICK = {"quick": True, "epochs": 10, "train_batches": None, "schedule.name": "events",
         "schedule.events": [{"epoch": 8, "lr": 0.001}], "log_every": 20}
FULL = {"quick": False}  # the `paper` recipe as it is (§5: ~90 epochs, the plateau rule)
DATA_HINT = "an ILSVRC-2012 tree or a folder made by `alexnet prepare`; QUICK: any image folder"


@dataclass(frozen=True)
class Condition:
    """One net of an ablation: `key` names its arms (`<key>-seed<n>`), `overrides` are the
    model options that make it (none for the paper net)."""

    key: str
    label: str
    overrides: dict[str, Any]


PAPER_NET = Condition("paper", "paper net", {})


def condition_arms(plan: Plan, conditions: Sequence[Condition]) -> list[Arm]:
    """Each condition (the `paper` recipe + its options) trained with seeds 0 .. plan.seeds-1;
    condition by condition."""
    base = QUICK if plan.quick else FULL
    return [Arm(f"{c.key}-seed{seed}", "paper", {**base, **c.overrides, "seed": seed},
                {"condition": c.key, "seed": seed})
            for c in conditions for seed in range(plan.seeds)]


@dataclass
class Measured:
    """What the analysis reads from each arm: final validation errors, per-epoch curves and
    the final net's error on its own training images (centre views, eval mode)."""

    final: dict[tuple[str, int], dict[str, float]]  # (condition, seed) -> top1/top5/loss
    records: dict[tuple[str, int], list[dict[str, Any]]]
    folders: dict[tuple[str, int], Path]
    train_err: dict[tuple[str, int], float]  # {} unless measured

    def values(self, key: str, metric: str = "top1_err") -> list[float]:
        return [self.final[k][metric] for k in sorted(self.final) if k[0] == key]

    def seeds(self) -> list[int]:
        return sorted({s for _, s in self.final})


def measure(runs: Sequence[ArmRun], *, train_error: bool = False,
            data: str | None = None) -> Measured:
    """Every arm's numbers; `train_error`: also each final net's top-1 error on its training
    split, through `evaluate` (the one evaluation path), to measure overfitting."""
    records = {(r.tags["condition"], r.tags["seed"]): read_records(r.folder) for r in runs}
    folders = {(r.tags["condition"], r.tags["seed"]): r.folder for r in runs}
    final = {k: final_val(v) for k, v in records.items()}
    train_err = {}
    if train_error:
        train_err = {k: evaluate_checkpoints([str(f / "last.pt")], data, split="train",
                                             progress=True)["top1_err"]
                     for k, f in folders.items()}
    return Measured(final, records, folders, train_err)


def paired_effects(m: Measured, ablated: str, baseline: str = PAPER_NET.key,
                   metric: str = "top1_err") -> list[float]:
    """Per seed that has both: the ablated net's final error minus the baseline's."""
    return [m.final[(ablated, s)][metric] - m.final[(baseline, s)][metric]
            for s in m.seeds() if (ablated, s) in m.final and (baseline, s) in m.final]


def error_rows(m: Measured, conditions: Sequence[Condition],
               paper: dict[str, tuple[float, float]], baseline: Condition = PAPER_NET
               ) -> list[dict[str, Any]]:
    """Each condition's final top-1 and top-5 error (the paper gives only differences), then
    each ablated condition minus the baseline, per seed, beside the paper's difference."""
    rows: list[dict[str, Any]] = []
    for c in conditions:
        for metric, name in (("top1_err", "top-1"), ("top5_err", "top-5")):
            rows.append({"quantity": f"{c.label}: {name} error", "ours": m.values(c.key, metric),
                         "paper": None, "unit": "%"})
    for c in conditions:
        if c.key == baseline.key:
            continue
        for i, (metric, name) in enumerate((("top1_err", "top-1"), ("top5_err", "top-5"))):
            rows.append({"quantity": f"{c.label} − {baseline.label}, {name} (per seed)",
                         "ours": paired_effects(m, c.key, baseline.key, metric),
                         "paper": paper[c.key][i] if c.key in paper else None,
                         "unit": "points"})
    return rows


def curve(records: list[dict[str, Any]], split: str) -> tuple[list[int], list[float]]:
    """(epochs completed, top-1 error) of one split: `val` is the whole validation set after
    each epoch; `train` the training batches as trained (augmented, dropout on)."""
    rows = sorted((r for r in records if r.get("split") == split), key=lambda r: r["epoch"])
    return [int(r["epoch"]) + 1 for r in rows], [float(r["top1_err"]) for r in rows]


def mean_curve(m: Measured, key: str, split: str) -> tuple[list[int], list[float]]:
    """The curve averaged over seeds, up to the epoch every seed reached."""
    curves = [curve(m.records[k], split) for k in sorted(m.records) if k[0] == key]
    curves = [c for c in curves if c[0]]
    if not curves:
        return [], []
    n = min(len(c[0]) for c in curves)
    return curves[0][0][:n], [statistics.fmean(c[1][i] for c in curves) for i in range(n)]


def gap_curve(m: Measured, key: str) -> tuple[list[int], list[float]]:
    """Validation minus training top-1 error after each epoch (mean over seeds): how far the
    net has overfitted (the training error as trained, with its augmentation and dropout)."""
    epochs, val = mean_curve(m, key, "val")
    _, train = mean_curve(m, key, "train")
    n = min(len(val), len(train))
    return epochs[:n], [v - t for v, t in zip(val[:n], train[:n], strict=True)]


def final_gaps(m: Measured, key: str) -> list[float]:
    """Per seed: final validation error minus the final net's error on its training images
    (both centre views, eval mode; needs `measure(train_error=True)`)."""
    return [m.final[k]["top1_err"] - m.train_err[k] for k in sorted(m.final)
            if k[0] == key and k in m.train_err]


def epochs_to_best(records: list[dict[str, Any]], within: float = 0.005) -> float:
    """Epochs until the validation error first comes within `within` of its lowest value: when
    the net has converged as far as held-out images can tell (nan without validation)."""
    epochs, errs = curve(records, "val")
    if not errs:
        return math.nan
    best = min(errs)
    return float(next(e for e, v in zip(epochs, errs, strict=True) if v <= best + within))


def draw_ablation(m: Measured, conditions: Sequence[Condition], path: Path, title: str, *,
                  gap: bool = False) -> Path:
    """Validation (solid) and training (dashed) error per epoch for each condition, mean over
    seeds, or with `gap` the validation − training error; and the final top-1 errors."""
    lines = []
    for i, c in enumerate(conditions):
        if gap:
            x, y = gap_curve(m, c.key)
            lines.append({"label": f"{c.label}: val − train", "epochs": x, "errors": y,
                          "color": f"C{i}"})
            continue
        for split, dashed in (("val", False), ("train", True)):
            x, y = mean_curve(m, c.key, split)
            lines.append({"label": f"{c.label}: {split}", "epochs": x, "errors": y,
                          "dashed": dashed, "color": f"C{i}"})
    bars = [{"label": c.label, "values": m.values(c.key)} for c in conditions]
    return ablation_figure(lines, bars, path, title=title,
                           ylabel="val − train top-1 error (%)" if gap else "top-1 error (%)")


def ablation_outcome(m: Measured, conditions: Sequence[Condition],
                     paper: dict[str, tuple[float, float]], path_title: str, *, floor: float,
                     verdict_on: Sequence[str] | None = None, gap: bool = False,
                     rows: Sequence[dict[str, Any]] = (), notes: Sequence[str] = (),
                     details: dict[str, Any] | None = None) -> Outcome:
    """The Outcome of an ablation: `error_rows` (+ `rows`), the verdict on the top-1 effects
    of the conditions in `verdict_on` (default: every ablated one, all their seeds pooled)
    against the paper's top-1 difference, and `draw_ablation`'s figure."""
    ablated = [c for c in conditions if c.key != PAPER_NET.key]
    judged = [c for c in ablated if verdict_on is None or c.key in verdict_on]
    effects = [e for c in judged for e in paired_effects(m, c.key)]
    paper_top1 = statistics.fmean(paper[c.key][0] for c in judged)
    names = " and ".join(c.label for c in judged)
    return Outcome(
        rows=error_rows(m, conditions, paper) + list(rows),
        effect={"name": f"top-1 error of the {names} − of the paper net, per seed",
                "values": effects, "paper": paper_top1, "unit": "points"},
        verdict=verdict(effects, paper_top1, floor=floor, fmt="{:+.2%}",
                        over="seeds" if len(judged) == 1 else "runs (seed × condition)"),
        draw=lambda path: draw_ablation(m, conditions, path, path_title, gap=gap),
        notes=list(notes),
        details={"curves": {c.key: {split: mean_curve(m, c.key, split)
                                    for split in ("train", "val")} for c in conditions},
                 **(details or {})})
