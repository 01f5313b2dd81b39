"""`towers` (§3.2): two towers on two GPUs "reduces our top-1 and top-5 error rates by 1.7%
and 1.2%, respectively, as compared with a net with half as many kernels in each
convolutional layer trained on one GPU".

Three nets, the same seeds: `paper` (two towers, groups of 2 in conv2, conv4, conv5), `half`
(one tower with half the kernels; §3.2's footnote: conv5 and the fully-connected layers keep
their size) and `one-tower` (the paper's widths with full connectivity, models/paper.py). The
verdict is on the paper's comparison, half − paper; one-tower − paper is reported beside it
(the paper does not state it).
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

TWO = Condition(PAPER_NET.key, "two towers (paper)", {})
HALF = Condition("half", "half kernels, one GPU", {"model.name": "half"})
ONE = Condition("one-tower", "one tower, full width", {"model.name": "one-tower"})
CONDITIONS = (TWO, HALF, ONE)
PAPER = {HALF.key: (0.017, 0.012)}  # §3.2: top-1, top-5 error of half − of two towers


def arms(plan: Plan) -> list[Arm]:
    return condition_arms(plan, CONDITIONS)


def analyse(plan: Plan, runs: list[ArmRun]) -> Outcome:
    return ablation_outcome(measure(runs), CONDITIONS, PAPER,
                            "§3.2: two towers vs half the kernels vs one full tower",
                            floor=EXPERIMENT.floor, verdict_on=(HALF.key,))


POWER = PowerNote(
    effect=0.017, sigma=math.hypot(0.0028, 0.0014),
    measured="seed std of top-1 error: two towers 0.28, half the kernels 0.14 points, QUICK "
             "on tiny-imagenet-10 at 64 px, 2 seeds (README's towers row)",
    full="--full: three ~90-epoch ILSVRC-2012 runs "
         "(~8 h each on one GPU, estimate; months on 2 CPU cores)", fmt="{:.2%}")

EXPERIMENT = Experiment(
    name="towers", section="§3.2",
    claim="two towers beat one GPU's net with half the kernels",
    paper="ILSVRC: top-1 / top-5 error 1.7 / 1.2 points lower than the half-kernel net",
    default_data=None, data_hint=DATA_HINT,
    seeds=(2, 1),
    cost=("about 25 min on 2 CPU cores: 6 runs of 10 QUICK epochs on tiny-imagenet-10 at 64 px "
          "(3 min 40 s per two-tower run, 5 min 30 s per one-tower run); 19 min measured with "
          "--reuse of lrn's paper-net runs", "three ~90-epoch ILSVRC-2012 runs"),
    varies=("model.name", "seed"),
    floor=0.01, floor_why="one seed: 1 point of top-1 error",
    arms=arms, analyse=analyse, power=POWER)
