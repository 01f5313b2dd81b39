"""`lrn` (§3.3): "Response normalization reduces our top-1 and top-5 error rates by 1.4% and
1.2%, respectively" on ILSVRC.

The `paper` net with and without its two response-normalisation layers (after conv1 and conv2;
model option `lrn`), the same seeds; effect per seed: top-1 error without − with.
"""

from __future__ import annotations

import math

from alexnet.experiments.ablation import (
    DATA_HINT,
    PAPER_NET,
    Condition,
    ablation_outcome,
    condition_arms,
    measure,
)
from alexnet.experiments.arms import Arm
from alexnet.experiments.power import PowerNote
from alexnet.experiments.spec import ArmRun, Experiment, Outcome, Plan

NO_LRN = Condition("no-lrn", "no normalisation", {"model.lrn": False})
CONDITIONS = (PAPER_NET, NO_LRN)
PAPER = {NO_LRN.key: (0.014, 0.012)}  # §3.3: top-1, top-5 error without − with


def arms(plan: Plan) -> list[Arm]:
    return condition_arms(plan, CONDITIONS)


def analyse(plan: Plan, runs: list[ArmRun]) -> Outcome:
    return ablation_outcome(measure(runs), CONDITIONS, PAPER,
                            "§3.3: the paper net with and without response normalisation",
                            floor=EXPERIMENT.floor)


POWER = PowerNote(
    effect=0.014, sigma=math.hypot(0.0028, 0.0156),
    measured="seed std of top-1 error: with LRN 0.28, without 1.56 points, QUICK on "
             "tiny-imagenet-10 at 64 px, 2 seeds (README's lrn row)",
    full="--full: two ~90-epoch ILSVRC-2012 runs per seed "
         "(~8 h each on one GPU, estimate; months on 2 CPU cores); ILSVRC's 50,000 "
         "validation images also cut the test noise to ~0.2 points", fmt="{:.2%}")

EXPERIMENT = Experiment(
    name="lrn", section="§3.3",
    claim="response normalisation lowers the paper net's top-1 and top-5 error",
    paper="ILSVRC: top-1 / top-5 error 1.4 / 1.2 points lower with normalisation",
    default_data=None, data_hint=DATA_HINT,
    seeds=(2, 1),
    cost=("about 15 min on 2 CPU cores: 4 runs of 10 QUICK epochs on tiny-imagenet-10 at 64 px, "
          "3 min 40 s each (measured)", "two `paper` runs (~90 ILSVRC-2012 epochs each)"),
    varies=("model.lrn", "seed"),
    floor=0.01, floor_why="one seed: 1 point of top-1 error",
    arms=arms, analyse=analyse, power=POWER)
