"""`depth` (§7): "our network's performance degrades if a single convolutional layer is
removed. For example, removing any of the middle layers results in a loss of about 2% for the
top-1 performance of the network."

The `paper` net and the net without conv3, conv4 or conv5 (model option `remove_conv`: the
next layer takes the removed layer's input maps, models/paper.py), the same seeds; effect per
seed and removed layer: top-1 error without it − with it (the verdict pools them).

QUICK disagreed (−1.8 points: the shallower nets did better on 5,000 images). `diagnose`
says from the curves which explains it: the *budget* (the paper net fits its own training
batches worse than the shallower nets at the last epoch: it is less trained after the same
epochs, so more epochs would move the result) or the *model and data* (the paper net fits its
training batches at least as well but validates worse: more capacity than 5,000 images
need, the regime opposite to §7's 1.2 million; more epochs would widen it).
"""

from __future__ import annotations

import statistics
from typing import Any

from alexnet.experiments.ablation import (
    DATA_HINT,
    PAPER_NET,
    Condition,
    Measured,
    ablation_outcome,
    condition_arms,
    mean_curve,
    measure,
)
from alexnet.experiments.arms import Arm
from alexnet.experiments.power import PowerNote
from alexnet.experiments.spec import ArmRun, Experiment, Outcome, Plan

REMOVED = (3, 4, 5)
CONDITIONS = (PAPER_NET, *(Condition(f"no-conv{k}", f"without conv{k}",
                                     {"model.remove_conv": k}) for k in REMOVED))
PAPER = {f"no-conv{k}": (0.02, None) for k in REMOVED}  # §7: "about 2%" top-1, no top-5


def arms(plan: Plan) -> list[Arm]:
    return condition_arms(plan, CONDITIONS)


def diagnose(m: Measured) -> dict[str, Any]:
    """Budget or model: the paper net's and the shallower nets' last training error (batches
    as trained, mean over seeds) and final validation error; `cause` is "budget" when the
    paper net fits its training batches worse than the shallower nets on average, "model"
    when it fits them at least as well yet validates worse, "none" when it validates better
    (nothing to explain)."""
    def last(key: str, split: str) -> float:
        _, errors = mean_curve(m, key, split)
        return errors[-1] if errors else float("nan")

    removed = [c.key for c in CONDITIONS if c.key != PAPER_NET.key and m.values(c.key)]
    if not removed or not m.values(PAPER_NET.key):
        return {"cause": "none", "text": "no arms to compare"}
    train_paper, val_paper = last(PAPER_NET.key, "train"), last(PAPER_NET.key, "val")
    train_removed = statistics.fmean(last(k, "train") for k in removed)
    val_removed = statistics.fmean(last(k, "val") for k in removed)
    numbers = (f"last-epoch training error {train_paper:.2%} (paper net) vs "
               f"{train_removed:.2%} (a middle layer removed, mean); validation "
               f"{val_paper:.2%} vs {val_removed:.2%}")
    if val_paper <= val_removed:
        cause, why = "none", "the paper net validates better, as §7 says"
    elif train_paper > train_removed:
        cause, why = "budget", ("the paper net has fitted its training images less after the "
                                "same epochs: it is under-trained in this budget, more epochs "
                                "(the full mode) would move the result")
    else:
        cause, why = "model", ("the paper net fits its training images as well or better but "
                               "validates worse: its extra layer is capacity this small data "
                               "set does not need (§7's claim is about 1.2 million ILSVRC "
                               "images); more epochs would not reverse it")
    return {"cause": cause, "text": f"{why} ({numbers})", "train": {
        "paper": train_paper, "removed": train_removed}, "val": {"paper": val_paper,
                                                                 "removed": val_removed}}


def analyse(plan: Plan, runs: list[ArmRun]) -> Outcome:
    m = measure(runs)
    d = diagnose(m)
    return ablation_outcome(m, CONDITIONS, PAPER,
                            "§7: the paper net without one of its middle convolutional layers",
                            floor=EXPERIMENT.floor, notes=[f"budget or model? {d['cause']}: "
                                                           f"{d['text']}"],
                            details={"diagnosis": d})


# Power (power.py): §7's 2 points against the QUICK seed noise of one removed-layer effect,
# 1.03 points (the std of the three effects of the QUICK run, docs/EXPERIMENTS.md): the
# verdict pools the three layers, 3 effects per seed.
POWER = PowerNote(
    effect=0.02, sigma=0.0103, per_seed=len(REMOVED),
    measured="std of the 3 removed-layer effects, QUICK on tiny-imagenet-10 at 64 px, 1 seed",
    full="--full: four ~90-epoch ILSVRC-2012 runs (~8 h each on one GPU, estimate; "
         "months on 2 CPU cores)", fmt="{:.2%}")

EXPERIMENT = Experiment(
    name="depth", section="§7",
    claim="removing a middle convolutional layer costs about 2 points of top-1 error",
    paper="ILSVRC: about 2% worse top-1 error without any one middle layer",
    default_data=None, data_hint=DATA_HINT,
    seeds=(1, 1),
    cost=("19 min measured on 2 CPU cores: 4 runs of 10 QUICK epochs on tiny-imagenet-10 at "
          "64 px (4 min 40 s each); 13 min with --reuse of lrn's paper-net run",
          "four ~90-epoch ILSVRC-2012 runs"),
    varies=("model.remove_conv", "seed"),
    floor=0.01, floor_why="one seed and layer: 1 point of top-1 error",
    arms=arms, analyse=analyse, power=POWER)
