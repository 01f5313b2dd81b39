"""`kernels` (§6.1, Fig. 3): "the kernels on GPU 1 are largely color-agnostic, while the
kernels on GPU 2 are largely color-specific. This kind of specialization occurs during every
run and is independent of any particular random weight initialization (modulo a renumbering
of the GPUs)."

Measured on each trained two-tower net's conv1 (the arms: one `paper` run per seed, or the
runs of --from): every kernel's chroma (evaluation/kernel_colour.py: 0 grey, about 0.82 for
random weights, 1 opponent colours), its mean per tower, and how far apart the two towers are,
|mean₂ − mean₁|. "Modulo a renumbering" means either tower may be the colour-specific one, so
the specialisation is that distance, compared with the distance the same 96 kernels give when
split into two random halves of 48 (what an unspecialised net shows): effect per run =
|mean₂ − mean₁| − the random halves' mean distance (paper: positive, in every run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from alexnet.evaluation.kernel_colour import kernel_chroma
from alexnet.experiments.ablation import PAPER_NET, condition_arms
from alexnet.experiments.arms import Arm
from alexnet.experiments.power import PowerNote
from alexnet.experiments.spec import ArmRun, Experiment, Outcome, Plan
from alexnet.experiments.verdict import verdict
from alexnet.figures.conv1_kernels import conv1_kernels_figure
from alexnet.figures.experiments import chroma_figure
from alexnet.weights.checkpoint import open_checkpoint

HALVES = 1000  # random splits of the kernels into two halves, for the chance distance
PAPER_TEXT = "one tower colour-agnostic, the other colour-specific, in every run (Fig. 3)"


def arms(plan: Plan) -> list[Arm]:
    """One `paper` run per seed (the ablations' QUICK settings); none with --from."""
    return [] if plan.source else condition_arms(plan, (PAPER_NET,))


def chance_distance(chroma: torch.Tensor, halves: int = HALVES, seed: int = 0) -> float:
    """Mean |mean(A) − mean(B)| over `halves` random splits of the kernels' chroma (K,) into
    two halves of K/2: the towers' distance if tower membership did not matter."""
    g = torch.Generator().manual_seed(seed)
    k = len(chroma)
    perms = torch.stack([torch.randperm(k, generator=g) for _ in range(halves)])  # (H, K)
    split = chroma.double()[perms].view(halves, 2, k // 2).mean(2)  # (H, 2)
    return float((split[:, 0] - split[:, 1]).abs().mean())


def run_chroma(folder: Path) -> dict[str, Any] | None:
    """Per-tower chroma of a run's final conv1, or None for a net without two RGB towers."""
    model = open_checkpoint(folder / "last.pt", device="cpu").model
    weight = model.conv1.weight.detach()  # (96, 3, 11, 11) for the paper net
    if int(getattr(model, "towers", 1)) != 2 or weight.shape[1] != 3:
        return None
    chroma = kernel_chroma(weight)  # (K,)
    t1, t2 = torch.chunk(chroma, 2)
    return {"tower1": t1.tolist(), "tower2": t2.tolist(), "mean1": float(t1.mean()),
            "mean2": float(t2.mean()), "distance": abs(float(t2.mean() - t1.mean())),
            "chance": chance_distance(chroma), "weight": weight}


def analyse(plan: Plan, runs: list[ArmRun]) -> Outcome:
    measured, skipped = {}, []
    for r in runs:
        c = run_chroma(r.folder)
        if c is None:
            skipped.append(r.name)
        else:
            measured[r.name] = c
    values = list(measured.values())
    effects = [c["distance"] - c["chance"] for c in values]
    rows = [
        {"quantity": "tower 1: mean chroma of conv1's kernels", "unit": "chroma",
         "ours": [c["mean1"] for c in values], "paper": None},
        {"quantity": "tower 2: mean chroma of conv1's kernels", "unit": "chroma",
         "ours": [c["mean2"] for c in values], "paper": None},
        {"quantity": "distance between the towers' means", "unit": "chroma",
         "ours": [c["distance"] for c in values], "paper": None},
        {"quantity": "the same for random halves of the kernels", "unit": "chroma",
         "ours": [c["chance"] for c in values], "paper": None},
        {"quantity": "runs whose tower 2 is the more colour-specific", "unit": "runs",
         "ours": [float(sum(c["mean2"] > c["mean1"] for c in values))], "paper": None,
         "note": "the paper: GPU 2 in its runs, \"modulo a renumbering of the GPUs\""}]
    weights = {name: c.pop("weight") for name, c in measured.items()}  # (96, 3, 11, 11) each

    def draw(path: Path) -> Path:
        for name, weight in weights.items():  # Fig. 3 of every run beside the figure
            conv1_kernels_figure(weight, path.with_name(f"kernels-{name}.png"), towers=2,
                                 title=f"conv1 of {name}")
        return chroma_figure([{"label": name, "towers": [c["tower1"], c["tower2"]]}
                              for name, c in measured.items()], path,
                             title="Fig. 3 measured: conv1 chroma per tower (0 grey, "
                                   "1 opponent colours)")

    notes = ["chroma: |w − grey(w)| / |w| per kernel; random (untrained) weights give about "
             "0.82, grey kernels 0"]
    if skipped:
        notes.append(f"not two RGB towers, left out: {', '.join(skipped)}")
    return Outcome(
        rows=rows,
        effect={"name": "distance between the towers' mean chroma − random halves', per run",
                "values": effects, "paper": 1.0, "unit": "chroma", "paper_text": PAPER_TEXT},
        verdict=verdict(effects, 1.0, floor=EXPERIMENT.floor, fmt="{:+.3f}",
                        paper_text=PAPER_TEXT),
        draw=draw, notes=notes,
        details={"runs": measured,
                 "kernel_figures": [f"kernels-{name}.png" for name in weights]})


# Fig. 3 gives a direction; the size the budget must tell is the floor, 0.02 of chroma.
POWER = PowerNote(
    effect=0.02, sigma=0.07,
    measured="std over runs of the towers' chroma distance beyond random halves, 4 QUICK "
             "two-tower runs of `lrn` (README's kernels row)",
    full="--full: ~90-epoch ILSVRC-2012 runs "
         "(~8 h each on one GPU, estimate; months on 2 CPU cores); the split appears in fully "
         "trained conv1 kernels (§6.1), not after 10 epochs on 5,000 images")

EXPERIMENT = Experiment(
    name="kernels", section="§6.1, Fig. 3",
    claim="the two towers' conv1 kernels specialise: one largely colour-agnostic, the other "
          "colour-specific, in every run",
    paper=PAPER_TEXT,
    default_data=None, data_hint="an ILSVRC-2012 tree or a folder made by `alexnet prepare`; "
    "QUICK: any RGB image folder; or --from a run or experiment folder",
    seeds=(3, 2),
    cost=("about 11 min on 2 CPU cores: 3 QUICK `paper` runs of 10 epochs on tiny-imagenet-10 "
          "at 64 px; 14 s measured with --from lrn's four runs", "one `paper` run per seed "
          "(~90 ILSVRC-2012 epochs)"),
    varies=("seed",),
    floor=0.02, floor_why="one run: 0.02 of chroma beyond random halves",
    arms=arms, analyse=analyse, takes_runs=True, power=POWER)
