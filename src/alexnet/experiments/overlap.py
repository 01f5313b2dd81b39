"""`overlap` (§3.4): overlapping pooling (z = 3, s = 2) "reduces the top-1 and top-5 error
rates by 0.4% and 0.3%, respectively, as compared with the non-overlapping scheme s = 2, z = 2
... We generally observe during training that models with overlapping pooling find it
slightly more difficult to overfit."

The `paper` net with its three max-pools overlapping or not (model option `pool`), the same
seeds; effect per seed: top-1 error non-overlapping − overlapping. Overfitting is reported as
the gap between validation and training error: per epoch (the training batches as trained)
and for each final net (its own training images, centre views, through `evaluate`).
"""

from __future__ import annotations

import math

from alexnet.experiments.ablation import (
    DATA_HINT,
    PAPER_NET,
    Condition,
    ablation_outcome,
    condition_arms,
    final_gaps,
    gap_curve,
    measure,
)
from alexnet.experiments.arms import Arm
from alexnet.experiments.power import PowerNote
from alexnet.experiments.spec import ArmRun, Experiment, Outcome, Plan

NON_OVERLAP = Condition("non-overlap", "z = s = 2", {"model.pool": "non-overlap"})
OVERLAP = Condition(PAPER_NET.key, "z = 3, s = 2 (paper)", {})
CONDITIONS = (OVERLAP, NON_OVERLAP)
PAPER = {NON_OVERLAP.key: (0.004, 0.003)}  # §3.4: top-1, top-5 error non-overlapping − overlapping


def arms(plan: Plan) -> list[Arm]:
    return condition_arms(plan, CONDITIONS)


def analyse(plan: Plan, runs: list[ArmRun]) -> Outcome:
    m = measure(runs, train_error=True)
    gaps = {c.key: final_gaps(m, c.key) for c in CONDITIONS}
    rows = [{"quantity": f"{c.label}: validation − training error of the final net",
             "ours": gaps[c.key], "paper": None, "unit": "points",
             "note": "paper: overlapping pooling is slightly harder to overfit (smaller gap)"}
            for c in CONDITIONS]
    return ablation_outcome(
        m, CONDITIONS, PAPER, "§3.4: overlapping (z=3, s=2) vs non-overlapping (z=s=2) pooling:"
        " the gap between validation and training error", floor=EXPERIMENT.floor, gap=True,
        rows=rows, details={"gap_per_epoch": {c.key: gap_curve(m, c.key) for c in CONDITIONS}},
        notes=["training error of the final net: its own training images, centre views, "
               "eval mode (`evaluate` on the train split); per epoch (figure): the training "
               "batches as trained, with augmentation and dropout"])


POWER = PowerNote(
    effect=0.004, sigma=math.hypot(0.0028, 0.0269),
    measured="seed std of top-1 error: overlapping 0.28, z = s = 2 2.69 points, QUICK on "
             "tiny-imagenet-10 at 64 px, 2 seeds (README's overlap row)",
    full="--full on ILSVRC-2012: two ~90-epoch runs per seed "
         "(~8 h each on one GPU, estimate; months on 2 CPU cores); §3.4's 0.4 "
         "points need a seed noise under ~0.3 points, i.e. the full data", fmt="{:.2%}")

EXPERIMENT = Experiment(
    name="overlap", section="§3.4",
    claim="overlapping pooling lowers the error and makes the net slightly harder to overfit",
    paper="ILSVRC: top-1 / top-5 error 0.4 / 0.3 points lower than z = s = 2",
    default_data=None, data_hint=DATA_HINT,
    seeds=(2, 1),
    cost=("about 16 min on 2 CPU cores: 4 runs of 10 QUICK epochs on tiny-imagenet-10 at 64 px; "
          "8 min 30 s measured with --reuse of lrn's paper-net runs",
          "two `paper` runs (~90 ILSVRC-2012 epochs each)"),
    varies=("model.pool", "seed"),
    floor=0.004, floor_why="one seed: the paper's own 0.4 points",
    arms=arms, analyse=analyse, power=POWER)
