"""`ensemble` (§6): "Averaging the predictions of five similar CNNs gives an error rate of
16.4%" top-5 (38.1% top-1) against 18.2% (40.7%) for one CNN, on ILSVRC-2012 val.

k independently seeded runs of one recipe (or the runs of `--from`); the error of the averaged
softmax of the first j nets, j = 1..k, each through `alexnet.evaluation` with several models
(`alexnet eval A B ...`'s path, the one `evaluate`), on centre views. The effect per net is its
own top-1 error minus the error of the average of all k (paper, k = 5: +2.6 points).
"""

from __future__ import annotations

from pathlib import Path

from alexnet.evaluation.checkpoints_eval import evaluate_checkpoints
from alexnet.experiments.arms import Arm
from alexnet.experiments.power import PowerNote
from alexnet.experiments.spec import ArmRun, Experiment, Outcome, Plan
from alexnet.experiments.verdict import verdict
from alexnet.figures.experiments import ensemble_figure

# §6, Table 2: ILSVRC-2012 val, top-1 / top-5 error.
PAPER = {1: (0.407, 0.182), 5: (0.381, 0.164)}


def arms(plan: Plan) -> list[Arm]:
    """One `paper` run per seed (its QUICK mode without CUDA)."""
    if plan.source:
        return []
    return [Arm(f"paper-seed{seed}", "paper", {"quick": plan.quick, "seed": seed},
                {"seed": seed}) for seed in range(plan.seeds)]


def analyse(plan: Plan, runs: list[ArmRun]) -> Outcome:
    data = plan.data if plan.source else None
    ckpts = [str(r.folder / "last.pt") for r in runs]
    curve = [evaluate_checkpoints(ckpts[:j], data, views="center") for j in
             range(1, len(ckpts) + 1)]
    k = len(ckpts)
    full = curve[-1]
    members = ([m["top1_err"] for m in full["members"]] if k > 1
               else [full["top1_err"]])
    members5 = ([m["top5_err"] for m in full["members"]] if k > 1
                else [full["top5_err"]])
    effects = [m - full["top1_err"] for m in members]
    paper_k = PAPER.get(k)
    rows = [{"quantity": "one net, top-1 error", "ours": members, "paper": PAPER[1][0],
             "unit": "%"},
            {"quantity": f"average of {k} nets, top-1 error", "ours": [full["top1_err"]],
             "paper": paper_k[0] if paper_k else None, "unit": "%",
             "note": "" if paper_k else "the paper reports 1 and 5 nets"},
            {"quantity": "one net, top-5 error", "ours": members5, "paper": PAPER[1][1],
             "unit": "%"},
            {"quantity": f"average of {k} nets, top-5 error", "ours": [full["top5_err"]],
             "paper": paper_k[1] if paper_k else None, "unit": "%"},
            {"quantity": f"one net − average of {k}, top-1 (per net)", "ours": effects,
             "paper": PAPER[1][0] - PAPER[5][0], "unit": "points",
             "note": "paper: k = 5"}]
    sizes = list(range(1, k + 1))
    errors = [c["top1_err"] for c in curve]

    def draw(path: Path) -> Path:
        return ensemble_figure(sizes, errors, path, members=members,
                               paper={j: e[0] for j, e in PAPER.items()},
                               title="§6: error of the averaged softmax of k nets")

    paper = PAPER[1][0] - PAPER[5][0]
    return Outcome(rows=rows,
                   effect={"name": f"top-1 error of each net − of the average of all {k}",
                           "values": effects, "paper": paper, "unit": "points"},
                   verdict=verdict(effects, paper, floor=EXPERIMENT.floor, fmt="{:+.2%}"),
                   draw=draw,
                   notes=[f"{full['images']} validation images, centre views; the first j "
                          "runs averaged for j = 1..k"],
                   details={"k": sizes, "top1_err": errors,
                            "top5_err": [c["top5_err"] for c in curve],
                            "members": full.get("members", [])})


POWER = PowerNote(
    effect=0.026, sigma=0.0122,
    measured="seed std of one net's top-1 error 1.22 points, 5 QUICK `paper` runs on "
             "tiny-imagenet-10 (README's ensemble row)",
    full="--full: five ~90-epoch ILSVRC-2012 runs "
         "(~8 h each on one GPU, estimate; months on 2 CPU cores)", fmt="{:.2%}")

EXPERIMENT = Experiment(
    name="ensemble", section="§6",
    claim="averaging the softmax of several independently trained CNNs lowers the error of "
          "one",
    paper="ILSVRC-2012 val: one CNN 40.7% / 18.2% top-1/top-5, five CNNs 38.1% / 16.4%",
    default_data=None, data_hint="an ILSVRC-2012 tree or a folder made by `alexnet prepare`; "
    "QUICK: any image folder; or --from a run or experiment folder",
    seeds=(5, 5),
    cost=("11 min measured on one CPU thread: 5 QUICK `paper` runs on tiny-imagenet-10",
          "five `paper` runs (~90 epochs of ILSVRC-2012 each) + k evaluations"),
    varies=("seed",),
    floor=0.005, floor_why="one net: half a point of top-1 error",
    arms=arms, analyse=analyse, takes_runs=True, power=POWER)
