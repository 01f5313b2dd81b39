"""`views` (§4.1): "At test time, the network makes a prediction by extracting five 224×224
patches (the four corner patches and the center patch) as well as their horizontal reflections
(hence ten patches in all), and averaging the predictions made by the network's softmax layer on
the ten patches." Without it, ILSVRC-2010 test error is 39.0% / 18.3% instead of 37.5% / 17.0%.

Each run (an arm trained here, or every run of `--from`: a run folder or another experiment's
folder) is tested on the same images twice through `alexnet.evaluation` (`alexnet eval`'s
path, the one `evaluate`): centre views and ten views. The effect per run is the centre-view
top-1 error minus the ten-view one (paper: +1.5 points).
"""

from __future__ import annotations

import math
from pathlib import Path

from alexnet.evaluation.checkpoints_eval import evaluate_checkpoints
from alexnet.experiments.arms import Arm
from alexnet.experiments.power import PowerNote
from alexnet.experiments.spec import ArmRun, Experiment, Outcome, Plan
from alexnet.experiments.verdict import verdict
from alexnet.figures.experiments import conditions_figure

# §4.1's footnote-free comparison (docs/paper-facts.md): ILSVRC-2010 test, one CNN.
PAPER = {"center": (0.390, 0.183), "ten": (0.375, 0.170)}  # (top-1, top-5)
EVAL_BATCH = 64  # images per batch (×10 views)


def arms(plan: Plan) -> list[Arm]:
    """One `paper` run per seed (its QUICK mode without CUDA: 64-px crops of 73-px images)."""
    if plan.source:
        return []
    return [Arm(f"paper-seed{seed}", "paper", {"quick": plan.quick, "seed": seed},
                {"seed": seed}) for seed in range(plan.seeds)]


def measure_views(runs: list[ArmRun], data: str | None) -> dict[str, dict[str, dict]]:
    """{run name: {"center": eval result, "ten": eval result}} of each run's last.pt."""
    out = {}
    for r in runs:
        ckpt = str(r.folder / "last.pt")
        out[r.name] = {views: evaluate_checkpoints([ckpt], data, views=views,
                                                   batch_size=EVAL_BATCH)
                       for views in ("center", "ten")}
    return out


def analyse(plan: Plan, runs: list[ArmRun]) -> Outcome:
    measured = measure_views(runs, plan.data if plan.source else None)
    names = list(measured)
    err = {v: {k: [measured[n][v][f"top{k}_err"] for n in names] for k in (1, 5)}
           for v in ("center", "ten")}
    effects = [c - t for c, t in zip(err["center"][1], err["ten"][1], strict=True)]
    effects5 = [c - t for c, t in zip(err["center"][5], err["ten"][5], strict=True)]
    images = {measured[n]["center"]["images"] for n in names}
    rows = [{"quantity": f"{label} top-{k} error", "ours": err[v][k],
             "paper": PAPER[v][k // 5], "unit": "%"}
            for k in (1, 5) for v, label in (("center", "centre view"), ("ten", "ten views"))]
    rows += [{"quantity": "centre − ten views, top-1 (per run)", "ours": effects,
              "paper": PAPER["center"][0] - PAPER["ten"][0], "unit": "points"},
             {"quantity": "centre − ten views, top-5 (per run)", "ours": effects5,
              "paper": PAPER["center"][1] - PAPER["ten"][1], "unit": "points"}]
    notes = sorted({m[v]["note"] for m in measured.values() for v in m if "note" in m[v]})
    notes.append(f"every run tested on the same {', '.join(map(str, sorted(images)))} "
                 "validation images, centre and ten views, through `evaluate`")

    def draw(path: Path) -> Path:
        return conditions_figure(
            [{"label": "centre view", "values": err["center"][1], "paper": PAPER["center"][0]},
             {"label": "ten views", "values": err["ten"][1], "paper": PAPER["ten"][0]}],
            path, ylabel="top-1 error (%)", title="§4.1: centre vs ten-view testing")

    paper = PAPER["center"][0] - PAPER["ten"][0]
    return Outcome(rows=rows,
                   effect={"name": "top-1 error, centre view − ten views, per run",
                           "values": effects, "paper": paper, "unit": "points"},
                   verdict=verdict(effects, paper, floor=EXPERIMENT.floor, fmt="{:+.2%}"),
                   draw=draw, notes=notes,
                   details={"runs": {n: {v: {k: measured[n][v][k] for k in
                                             ("top1_err", "top5_err", "images")}
                                         for v in ("center", "ten")} for n in names}})


# The views are of the same nets, so the effect's own spread is smaller than the arms'
# combined here (conservative: it was not measured per net).
POWER = PowerNote(
    effect=0.015, sigma=math.hypot(0.0122, 0.0136),
    measured="seed std of top-1 error: centre 1.22, ten views 1.36 points, 5 QUICK `paper` "
             "runs on tiny-imagenet-10, 500 images (README's views row)",
    full="--full: ILSVRC-2012 runs (~8 h each on one GPU, estimate) evaluated on its 50,000 "
         "validation images", fmt="{:.2%}")

EXPERIMENT = Experiment(
    name="views", section="§4.1",
    claim="averaging the softmax over ten patches (four corners, centre, and their "
          "reflections) lowers the test error of a single-view (centre) test",
    paper="ILSVRC-2010 test: 39.0% / 18.3% top-1/top-5 with one view, 37.5% / 17.0% with ten",
    default_data=None, data_hint="an ILSVRC-2012 tree or a folder made by `alexnet prepare`; "
    "QUICK: any image folder; or --from a run or experiment folder",
    seeds=(2, 1),
    cost=("~5 min on one CPU thread for 2 QUICK `paper` runs on tiny-imagenet-10 (estimate "
          "from ensemble's); 1 min measured with --from ensemble's 5 runs",
          "one `paper` run per seed (~90 epochs of ILSVRC-2012) + two evaluations"),
    varies=("seed",),
    floor=0.005, floor_why="one run: half a point of top-1 error",
    arms=arms, analyse=analyse, takes_runs=True, power=POWER)
