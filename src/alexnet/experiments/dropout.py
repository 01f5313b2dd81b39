"""`dropout` (§4.2): "Without dropout, our network exhibits substantial overfitting. Dropout
roughly doubles the number of iterations required to converge."

The `paper` net with dropout 0.5 on fc6 and fc7 and without it (`model.dropout=0`), the same
seeds. Overfitting is the gap between the final net's validation error and its error on its
own training images (centre views, eval mode, through `evaluate`); the effect per seed is the
gap without dropout − the gap with it (paper: large and positive). Convergence is the epoch at
which the validation error first comes within half a point of its lowest value; its ratio with
/ without dropout is reported beside the paper's "roughly doubles", not judged (a QUICK run's
fixed schedule ends before the paper net has converged).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from alexnet.experiments.ablation import (
    DATA_HINT,
    PAPER_NET,
    Condition,
    condition_arms,
    draw_ablation,
    epochs_to_best,
    error_rows,
    final_gaps,
    mean_curve,
    measure,
)
from alexnet.experiments.arms import Arm
from alexnet.experiments.power import PowerNote
from alexnet.experiments.spec import ArmRun, Experiment, Outcome, Plan
from alexnet.experiments.verdict import verdict

WITH = Condition(PAPER_NET.key, "dropout 0.5 (paper)", {})
WITHOUT = Condition("no-dropout", "no dropout", {"model.dropout": 0.0})
CONDITIONS = (WITH, WITHOUT)


def arms(plan: Plan) -> list[Arm]:
    return condition_arms(plan, CONDITIONS)


def analyse(plan: Plan, runs: list[ArmRun]) -> Outcome:
    m = measure(runs, train_error=True)
    gaps = {c.key: final_gaps(m, c.key) for c in CONDITIONS}
    seeds = [s for s in m.seeds() if all((c.key, s) in m.train_err for c in CONDITIONS)]
    effects = [(m.final[(WITHOUT.key, s)]["top1_err"] - m.train_err[(WITHOUT.key, s)])
               - (m.final[(WITH.key, s)]["top1_err"] - m.train_err[(WITH.key, s)])
               for s in seeds]
    converge = {c.key: [epochs_to_best(m.records[k]) for k in sorted(m.records)
                        if k[0] == c.key] for c in CONDITIONS}
    ratios = [a / b for a, b in zip(converge[WITH.key], converge[WITHOUT.key], strict=False)
              if b]
    rows = error_rows(m, CONDITIONS, {})
    rows += [{"quantity": f"{c.label}: training error of the final net", "unit": "%",
              "ours": [m.train_err[k] for k in sorted(m.train_err) if k[0] == c.key],
              "paper": None} for c in CONDITIONS]
    rows += [{"quantity": f"{c.label}: validation − training error", "ours": gaps[c.key],
              "paper": None, "unit": "points"} for c in CONDITIONS]
    rows += [{"quantity": f"{c.label}: epochs to the best validation error (±0.5 point)",
              "ours": converge[c.key], "paper": None, "unit": "epochs"} for c in CONDITIONS]
    rows.append({"quantity": "epochs to converge, with / without dropout", "ours": ratios,
                 "paper": 2.0, "unit": "x", "note": "paper: \"roughly doubles\""})

    def draw(path: Path) -> Path:
        return draw_ablation(m, CONDITIONS, path,
                             "§4.2: training (dashed) and validation (solid) error with and "
                             "without dropout")

    return Outcome(
        rows=rows,
        effect={"name": "validation − training error without dropout − with it, per seed",
                "values": effects, "paper": 1.0, "unit": "points",
                "paper_text": "positive: \"substantial overfitting\" without dropout"},
        verdict=verdict(effects, 1.0, floor=EXPERIMENT.floor, fmt="{:+.2%}",
                        paper_text="substantial overfitting without dropout"),
        draw=draw,
        notes=["training error of the final net: its own training images, centre views, eval "
               "mode; the curves' training error is the training batches as trained "
               "(augmented, and with dropout where the net has it)"],
        details={"curves": {c.key: {split: mean_curve(m, c.key, split)
                                    for split in ("train", "val")} for c in CONDITIONS},
                 "epochs_to_best": converge,
                 "mean_gap": {k: statistics.fmean(v) if v else None for k, v in gaps.items()}})


# §4.2 gives a direction ("substantial overfitting"), not a size: the size the budget must
# tell is the experiment's floor, 2 points of validation − training error.
POWER = PowerNote(
    effect=0.02, sigma=math.hypot(0.0008, 0.0040),
    measured="seed std of validation − training error: with dropout 0.08, without 0.40 "
             "points, QUICK on tiny-imagenet-10 at 64 px, 2 seeds (README's dropout row)",
    full="--full: two ~90-epoch ILSVRC-2012 runs "
         "(~8 h each on one GPU, estimate; months on 2 CPU cores)", fmt="{:.2%}")

EXPERIMENT = Experiment(
    name="dropout", section="§4.2",
    claim="without dropout the net overfits substantially; dropout about doubles the "
          "iterations to converge",
    paper="ILSVRC: \"substantial overfitting\" without dropout; \"roughly doubles\" the "
          "iterations with it",
    default_data=None, data_hint=DATA_HINT,
    seeds=(2, 1),
    cost=("about 16 min on 2 CPU cores: 4 runs of 10 QUICK epochs on tiny-imagenet-10 at 64 px; "
          "9 min measured with --reuse of lrn's paper-net runs",
          "two `paper` runs (~90 ILSVRC-2012 epochs each)"),
    varies=("model.dropout", "seed"),
    floor=0.02, floor_why="one seed: 2 points of validation − training error",
    arms=arms, analyse=analyse, power=POWER)
