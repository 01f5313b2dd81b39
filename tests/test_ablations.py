"""The paper's architecture ablations (`lrn`, `overlap`, `towers`, `dropout`, `depth`) and Fig. 3
/ Fig. 4 as experiments (`kernels`, `retrieval`) end to end at toy size on generated data,
through the real training and evaluation code; their analysis helpers on hand-made numbers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from alexnet.errors import ConfigError
from alexnet.evaluation.checkpoints_eval import evaluate_checkpoints
from alexnet.experiments import run_experiment
from alexnet.experiments.ablation import (
    Condition,
    Measured,
    epochs_to_best,
    error_rows,
    final_gaps,
    gap_curve,
    paired_effects,
)
from alexnet.experiments.kernels import chance_distance
from alexnet.experiments.verdict import AGREES, DISAGREES, INCONCLUSIVE, verdict

TOY = ["epochs=2", "batch_size=4", "train_batches=2", "log_every=1"]


def _results(folder) -> dict:
    data = json.loads((folder / "results.json").read_text())
    assert (folder / "results.md").is_file() and (folder / "figure.png").stat().st_size > 1000
    assert data["verdict"]["word"] in (AGREES, DISAGREES, INCONCLUSIVE)
    return data


def _records(val: list[float], train: list[float]) -> list[dict]:
    return ([{"epoch": e, "split": "val", "top1_err": v, "top5_err": v / 2, "loss": 1.0}
             for e, v in enumerate(val)]
            + [{"epoch": e, "split": "train", "top1_err": t} for e, t in enumerate(train)])


# ---------------------------------------------------------------- the analysis, by hand


def test_effects_gaps_and_convergence_on_hand_made_runs():
    recs = {("paper", 0): _records([0.6, 0.5, 0.40], [0.7, 0.5, 0.30]),
            ("paper", 1): _records([0.6, 0.5, 0.44], [0.7, 0.5, 0.34]),
            ("no-lrn", 0): _records([0.6, 0.5, 0.43], [0.7, 0.5, 0.20]),
            ("no-lrn", 1): _records([0.6, 0.5, 0.46], [0.7, 0.4, 0.20])}
    m = Measured(final={k: {"top1_err": r[2]["top1_err"], "top5_err": r[2]["top5_err"],
                            "loss": 1.0} for k, r in recs.items()},
                 records=recs, folders={}, train_err={k: 0.1 for k in recs})
    assert paired_effects(m, "no-lrn") == pytest.approx([0.03, 0.02])
    assert paired_effects(m, "no-lrn", metric="top5_err") == pytest.approx([0.015, 0.01])
    assert final_gaps(m, "paper") == pytest.approx([0.30, 0.34])
    epochs, gap = gap_curve(m, "no-lrn")  # val − train per epoch, mean over the seeds
    assert epochs == [1, 2, 3] and gap == pytest.approx([-0.1, 0.05, 0.245])
    rows = error_rows(m, [Condition("paper", "paper net", {}),
                          Condition("no-lrn", "no normalisation", {"model.lrn": False})],
                      {"no-lrn": (0.014, 0.012)})
    assert [r["paper"] for r in rows] == [None] * 4 + [0.014, 0.012]
    assert rows[4]["ours"] == pytest.approx([0.03, 0.02]) and rows[4]["unit"] == "points"
    assert epochs_to_best(_records([0.6, 0.42, 0.418, 0.45], [])) == 2.0  # within 0.5 point
    assert epochs_to_best(_records([0.6, 0.5, 0.4], [])) == 3.0
    assert math.isnan(epochs_to_best([]))


def test_the_chance_distance_of_random_halves():
    split = torch.cat([torch.zeros(48), torch.ones(48)])  # one grey tower, one colour tower
    assert abs(float(split[48:].mean() - split[:48].mean())) == 1.0
    assert chance_distance(split) < 0.2  # random halves mix the two: far from 1
    same = torch.rand(96, generator=torch.Generator().manual_seed(0))
    assert chance_distance(same) == pytest.approx(chance_distance(same.flip(0)), abs=0.02)
    assert chance_distance(torch.full((96,), 0.5)) == 0.0


def test_a_verdict_on_a_direction_names_the_paper_in_words():
    v = verdict([0.3, 0.35], 1.0, floor=0.02, paper_text="one tower grey, one colour")
    assert v.word == AGREES and "(one tower grey, one colour)" in v.reason
    assert verdict([-0.3, -0.35], 1.0, floor=0.02, paper_text="x").word == DISAGREES


def test_the_training_split_is_evaluated_through_the_one_path(tmp_path, eval_data):
    data = eval_data(n=12, classes=3)
    out = tmp_path / "lrn"
    run_experiment("lrn", data=data["source"], seeds=1, out=str(out), overrides=TOY)
    ckpt = str(out / "arms" / "paper-seed0" / "last.pt")
    train = evaluate_checkpoints([ckpt], split="train", progress=False)
    val = evaluate_checkpoints([ckpt], progress=False)
    assert train["split"] == "train" and val["split"] == "val"
    assert train["images"] == 12 and 0.0 <= train["top1_err"] <= 1.0
    # the memory source has the same images in both splits: the same numbers
    assert train["top1_err"] == val["top1_err"]
    saved = _results(out)
    assert [a["name"] for a in saved["arms"]] == ["paper-seed0", "no-lrn-seed0"]
    assert saved["arms"][1]["overrides"]["model.lrn"] is False
    assert saved["effect"]["paper"] == pytest.approx(0.014)
    assert saved["arms"][0]["overrides"]["schedule.name"] == "events"  # QUICK: fixed epochs


# ---------------------------------------------------------------- end to end


@pytest.mark.parametrize("name, arms, option, values, paper", [
    ("overlap", ["paper-seed0", "non-overlap-seed0"], "model.pool", [None, "non-overlap"],
     0.004),
    ("towers", ["paper-seed0", "half-seed0", "one-tower-seed0"], "model.name",
     [None, "half", "one-tower"], 0.017),
    ("depth", ["paper-seed0", "no-conv3-seed0", "no-conv4-seed0", "no-conv5-seed0"],
     "model.remove_conv", [None, 3, 4, 5], 0.02),
])
def test_ablations_end_to_end(tmp_path, eval_data, name, arms, option, values, paper):
    data = eval_data(n=12, classes=3)
    out = tmp_path / name
    results = run_experiment(name, data=data["source"], seeds=1, out=str(out), overrides=TOY)
    saved = _results(out)
    assert saved["verdict"] == results["verdict"]
    assert [a["name"] for a in saved["arms"]] == arms
    assert [a["overrides"].get(option) for a in saved["arms"]] == values
    assert saved["effect"]["paper"] == pytest.approx(paper)
    assert len(saved["effect"]["values"]) == (3 if name == "depth" else 1)
    assert set(saved["details"]["curves"]) == {a.rsplit("-seed", 1)[0] for a in arms}
    if name == "overlap":  # the gap of each final net, measured on its training images
        gaps = [r for r in saved["rows"] if "validation − training" in r["quantity"]]
        assert len(gaps) == 2 and all(len(r["ours"]) == 1 for r in gaps)
        assert set(saved["details"]["gap_per_epoch"]) == {"paper", "non-overlap"}


def test_dropout_reports_overfitting_and_convergence(tmp_path, eval_data):
    data = eval_data(n=12, classes=3)
    out = tmp_path / "dropout"
    run_experiment("dropout", data=data["source"], seeds=1, out=str(out), overrides=TOY)
    saved = _results(out)
    assert saved["arms"][1]["overrides"]["model.dropout"] == 0.0
    rows = {r["quantity"]: r for r in saved["rows"]}
    with_gap = rows["dropout 0.5 (paper): validation − training error"]["ours"][0]
    without_gap = rows["no dropout: validation − training error"]["ours"][0]
    assert saved["effect"]["values"] == pytest.approx([without_gap - with_gap])
    assert rows["epochs to converge, with / without dropout"]["paper"] == 2.0
    assert saved["verdict"]["n"] == 1 and saved["verdict"]["spread"] == 0.02  # one seed: floor
    assert saved["effect"]["paper_text"].startswith("positive")


def test_kernels_and_retrieval_from_trained_runs(tmp_path, eval_data):
    """Both read runs trained elsewhere: the two-tower nets of a `towers` experiment (its
    one-tower and half nets are left out of the chroma, by name)."""
    data = eval_data(n=12, classes=3)
    towers = tmp_path / "towers"
    run_experiment("towers", data=data["source"], seeds=1, out=str(towers), overrides=TOY)
    kernels = tmp_path / "kernels"
    run_experiment("kernels", source=str(towers), out=str(kernels))
    saved = _results(kernels)
    assert list(saved["details"]["runs"]) == ["paper-seed0"]
    assert any("half-seed0" in n and "one-tower-seed0" in n for n in saved["notes"])
    run = saved["details"]["runs"]["paper-seed0"]
    assert len(run["tower1"]) == len(run["tower2"]) == 48
    assert saved["effect"]["values"] == pytest.approx([run["distance"] - run["chance"]])
    assert (kernels / "kernels-paper-seed0.png").is_file()

    retrieval = tmp_path / "retrieval"
    run_experiment("retrieval", source=str(towers / "arms" / "paper-seed0"), data=data["source"],
                   out=str(retrieval))
    saved = _results(retrieval)
    rows = {r["quantity"]: r["ours"][0] for r in saved["rows"]}
    assert all(0.0 <= rows[f"precision@6, {b}-bit codes (Hamming)"] <= 1.0
               for b in (64, 128, 256))
    got = saved["details"]["runs"]["paper-seed0"]
    assert saved["effect"]["values"] == pytest.approx([got["features"] - got["pixels"]])
    assert rows["chance (a random training image's label matches)"] == pytest.approx(1 / 3)
    assert (retrieval / "fig4-paper-seed0.png").is_file()
    assert (retrieval / "fig4-paper-seed0-pixels.png").is_file()


def test_reuse_copies_the_same_finished_runs_only(tmp_path, eval_data):
    """The ablations all train the paper net with the same seeds: --reuse copies those arms
    from another experiment when their resolved config is the same, and trains the rest."""
    data = eval_data(n=12, classes=3)
    lrn = tmp_path / "lrn"
    run_experiment("lrn", data=data["source"], seeds=1, out=str(lrn), overrides=TOY)
    out = tmp_path / "overlap"
    results = run_experiment("overlap", data=data["source"], seeds=1, out=str(out),
                             overrides=TOY, reuse=[str(lrn)])
    assert [(a["name"], a["status"]) for a in results["arms"]] == [
        ("paper-seed0", "reused"), ("non-overlap-seed0", "trained")]
    copied, original = out / "arms" / "paper-seed0", lrn / "arms" / "paper-seed0"
    assert (copied / "metrics.jsonl").read_text() == (original / "metrics.jsonl").read_text()
    assert not copied.is_symlink()
    other = tmp_path / "towers"  # another learning rate: not the same run, trained anew
    results = run_experiment("towers", data=data["source"], seeds=1, out=str(other),
                             overrides=[*TOY, "optim.lr=0.02"], reuse=[str(lrn), str(out)])
    assert {a["status"] for a in results["arms"]} == {"trained"}
    with pytest.raises(ConfigError, match="not an experiment folder"):
        run_experiment("depth", data=data["source"], seeds=1, out=str(tmp_path / "d"),
                       overrides=TOY, reuse=[str(tmp_path / "nothing")])
