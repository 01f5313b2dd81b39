"""`retrieval` (§6.1, Fig. 4): "If two images produce feature activation vectors with a small
Euclidean separation, we can say that the higher levels of the neural network consider them
to be similar ... the retrieved training images are ... not close in L2 [pixel distance]";
and §6.1's proposal: "train an auto-encoder to compress these vectors to short binary codes"
for efficient retrieval.

For every validation image of a trained `paper` net (the arms: one run per seed, or the runs
of --from), its 6 nearest training images by the last hidden layer (fc7, 4096-d) and by the
raw pixels of the same centre views; precision@6 (the fraction sharing the query's label) of
each, beside chance; then the binary codes (evaluation/codes.py) at 64, 128 and 256 bits:
precision@6 by Hamming distance and queries per second against the Euclidean search. Effect
per run: precision of the features − of the pixels (paper: features find the same class,
pixels do not). Fig. 4 is drawn for a few queries, by features and by pixels.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from alexnet.evaluation.feature_retrieval import PRECISION_K, retrieval_precision
from alexnet.experiments.ablation import PAPER_NET, condition_arms
from alexnet.experiments.arms import Arm
from alexnet.experiments.power import PowerNote
from alexnet.experiments.spec import ArmRun, Experiment, Outcome, Plan
from alexnet.experiments.verdict import verdict
from alexnet.figures.experiments import precision_figure

BITS = (64, 128, 256)  # §6.1: "short binary codes"
# Full (ILSVRC-2012): the stored pixels cost C·s·s float16 values per image (300 KB at 224), so
# the full version searches 50,000 training images with 5,000 queries spread over val.
FULL_LIMITS = {"limit": 5000, "stored_limit": 50000}
PAPER_TEXT = "feature-space neighbours share the query's class, pixel-space ones do not (Fig. 4)"


def arms(plan: Plan) -> list[Arm]:
    """One `paper` run per seed (the ablations' QUICK settings); none with --from."""
    return [] if plan.source else condition_arms(plan, (PAPER_NET,))


def analyse(plan: Plan, runs: list[ArmRun]) -> Outcome:
    scratch = Path(tempfile.mkdtemp(prefix="alexnet-retrieval-"))
    limits = {} if plan.quick else FULL_LIMITS
    results = {r.name: retrieval_precision(str(r.folder / "last.pt"),
                                           plan.data if plan.source else None, bits=BITS,
                                           figure=scratch / f"fig4-{r.name}.png", **limits)
               for r in runs}
    values = list(results.values())
    effects = [r["features"] - r["pixels"] for r in values]
    rows = [{"quantity": f"precision@{PRECISION_K}, fc7 features (Euclidean)", "unit": "",
             "ours": [r["features"] for r in values], "paper": None},
            {"quantity": f"precision@{PRECISION_K}, raw pixels (Euclidean)", "unit": "",
             "ours": [r["pixels"] for r in values], "paper": None},
            {"quantity": "chance (a random training image's label matches)", "unit": "",
             "ours": [r["chance"] for r in values], "paper": None}]
    for b in BITS:
        rows.append({"quantity": f"precision@{PRECISION_K}, {b}-bit codes (Hamming)", "unit": "",
                     "ours": [r["codes"]["codes"][b]["precision"] for r in values],
                     "paper": None})
    rows.append({"quantity": "queries/s, Euclidean search over the stored fc7 vectors",
                 "unit": "", "ours": [r["codes"]["euclidean"]["queries_per_s"] for r in values],
                 "paper": None})
    for b in BITS:
        rows.append({"quantity": f"queries/s, {b}-bit Hamming search (encoding included)",
                     "unit": "", "ours": [r["codes"]["codes"][b]["queries_per_s"]
                                          for r in values], "paper": None})

    def draw(path: Path) -> Path:
        for f in scratch.glob("*.png"):  # Fig. 4 itself, by features and by pixels
            shutil.move(str(f), path.with_name(f.name))
        shutil.rmtree(scratch, ignore_errors=True)
        bars = {"fc7 (Euclidean)": [r["features"] for r in values],
                "pixels (Euclidean)": [r["pixels"] for r in values],
                **{f"{b}-bit codes": [r["codes"]["codes"][b]["precision"] for r in values]
                   for b in BITS}}
        return precision_figure(bars, [r["chance"] for r in values], path, k=PRECISION_K,
                                title="Fig. 4 measured: the nearest training images share "
                                      "the query's label")

    first = values[0] if values else {}
    return Outcome(
        rows=rows,
        effect={"name": f"precision@{PRECISION_K} of fc7 − of raw pixels, per run",
                "values": effects, "paper": 1.0, "unit": "", "paper_text": PAPER_TEXT},
        verdict=verdict(effects, 1.0, floor=EXPERIMENT.floor, fmt="{:+.3f}",
                        paper_text=PAPER_TEXT),
        draw=draw,
        notes=[f"{first.get('queries', 0):,} validation queries against "
               f"{first.get('stored', 0):,} training images; queries/s: one process on this "
               "machine's CPU threads, the best of 3"],
        details={"runs": {name: r for name, r in results.items()},
                 "figures": [f"fig4-{r.name}.png" for r in runs] +
                            [f"fig4-{r.name}-pixels.png" for r in runs]})


POWER = PowerNote(
    effect=0.02, sigma=None,
    measured="one QUICK run: precision@6 0.443 by fc7 vs 0.232 by pixels (README's "
             "retrieval row), no spread over runs yet",
    full="--full: one ~90-epoch ILSVRC-2012 run "
         "(~8 h each on one GPU, estimate; months on 2 CPU cores) and 50,000 stored images")

EXPERIMENT = Experiment(
    name="retrieval", section="§6.1, Fig. 4",
    claim="images whose last-hidden-layer vectors are close in Euclidean distance share their "
          "class, though their pixels are not close; short binary codes make the search cheap",
    paper=PAPER_TEXT,
    default_data=None, data_hint="an ILSVRC-2012 tree or a folder made by `alexnet prepare`; "
    "QUICK: any image folder; or --from a run or experiment folder",
    seeds=(1, 1),
    cost=("about 5 min on 2 CPU cores: one QUICK `paper` run of 10 epochs on tiny-imagenet-10 "
          "at 64 px and the search; 1 min 30 s measured with --from a run",
          "one `paper` run (~90 ILSVRC-2012 epochs) + 50,000 stored images"),
    varies=("seed",),
    floor=0.02, floor_why="one run: 0.02 of precision@6",
    arms=arms, analyse=analyse, takes_runs=True, power=POWER)
