"""`depth` (§7): "our network's performance degrades if a single convolutional layer is
removed. For example, removing any of the middle layers results in a loss of about 2% for the
top-1 performance of the network."

The `paper` net and the net without conv3, conv4 or conv5 (model option `remove_conv`: the
next layer takes the removed layer's input maps, models/paper.py), the same seeds; effect per
seed and removed layer: top-1 error without it − with it (the verdict pools them).
"""

from __future__ import annotations

from alexnet.experiments.ablation import (
    DATA_HINT,
    PAPER_NET,
    Condition,
    ablation_outcome,
    condition_arms,
    measure,
)
from alexnet.experiments.arms import Arm
from alexnet.experiments.spec import ArmRun, Experiment, Outcome, Plan

REMOVED = (3, 4, 5)
CONDITIONS = (PAPER_NET, *(Condition(f"no-conv{k}", f"without conv{k}",
                                     {"model.remove_conv": k}) for k in REMOVED))
PAPER = {f"no-conv{k}": (0.02, None) for k in REMOVED}  # §7: "about 2%" top-1, no top-5


def arms(plan: Plan) -> list[Arm]:
    return condition_arms(plan, CONDITIONS)


def analyse(plan: Plan, runs: list[ArmRun]) -> Outcome:
    return ablation_outcome(measure(runs), CONDITIONS, PAPER,
                            "§7: the paper net without one of its middle convolutional layers",
                            floor=EXPERIMENT.floor)


EXPERIMENT = Experiment(
    name="depth", section="§7",
    claim="removing a middle convolutional layer costs about 2 points of top-1 error",
    paper="ILSVRC: about 2% worse top-1 error without any one middle layer",
    default_data=None, data_hint=DATA_HINT,
    seeds=(1, 1),
    cost=("about 15 min on 2 CPU cores: 4 runs of 10 QUICK epochs on tiny-imagenet-10 at 64 px; "
          "13 min measured with --reuse of lrn's paper-net run", "four ~90-epoch ILSVRC-2012 runs"),
    varies=("model.remove_conv", "seed"),
    floor=0.01, floor_why="one seed and layer: 1 point of top-1 error",
    arms=arms, analyse=analyse)
