"""The power rule (experiments/power.py), relu-vs-tanh's threshold when an arm never crosses
it (§3.1, Fig. 1), and `alexnet experiment run all` reusing finished arms."""

from __future__ import annotations

import json
import math

import pytest

from alexnet.experiments import relu_tanh
from alexnet.experiments.catalog import EXPERIMENTS
from alexnet.experiments.power import PowerNote, assess, effect_sigma, power
from alexnet.experiments.spec import ArmRun, Plan
from alexnet.experiments.suite import SUMMARY_JSON, SUMMARY_MD, run_all
from alexnet.experiments.verdict import AGREES, verdict

TOY = ["epochs=1", "batch_size=8", "train_batches=2", "log_every=1"]


# ---------------------------------------------------------------- the power rule


def test_an_effect_far_above_the_seed_noise_is_told_with_two_seeds():
    # relu-vs-tanh: log 6 against ~0.05 of log-epochs noise
    result = assess(math.log(6), 0.05, 2, floor=math.log(2))
    assert result.tells and result.power > 0.95 and result.seeds_needed in (1, 2)
    assert "enough to tell" in result.reason


def test_an_effect_below_the_seed_noise_cannot_be_told_by_more_seeds():
    # overlapping pooling: 0.4 points against ~2.7 points of seed noise
    result = assess(0.004, 0.027, 2, floor=0.004)
    assert not result.tells and result.seeds_needed is None and result.power < 0.5
    assert "cannot tell" in result.reason


def test_more_seeds_help_an_effect_a_little_above_the_noise():
    # 1.3× the noise: 2 seeds agree ~73% of the time, 10 seeds ~84%
    weak = power(0.02, 0.015, 2, floor=0.01)
    strong = power(0.02, 0.015, 10, floor=0.01)
    assert weak < 0.8 <= strong
    result = assess(0.02, 0.015, 2, floor=0.01)
    assert not result.tells and result.seeds_needed in range(6, 11)
    assert f"{result.seeds_needed} would" in result.reason


def test_the_power_is_the_verdicts_own_agreement_rate():
    # simulate the verdict itself with the same made-up spread: the two agree
    import random

    rng = random.Random(1)
    d, sigma, n = 0.015, 0.01, 3
    agree = sum(verdict([rng.gauss(d, sigma) for _ in range(n)], d, floor=0.01).word == AGREES
                for _ in range(3000)) / 3000
    assert power(d, sigma, n, floor=0.01) == pytest.approx(agree, abs=0.04)


def test_one_seed_is_judged_against_the_floor_and_the_sign_is_the_papers():
    assert power(0.05, 0.001, 1, floor=0.01) == 1.0
    assert power(0.005, 0.001, 1, floor=0.01) == 0.0
    assert power(-0.05, 0.01, 3, floor=0.01) > 0.9  # a negative paper effect, mirrored
    assert power(0.0, 0.01, 3, floor=0.01) == 0.0


def test_arm_spreads_combine_as_a_difference_of_independent_runs():
    assert effect_sigma(0.03, 0.04) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        effect_sigma(-1.0, 0.1)


def test_a_note_says_before_the_run_whether_quick_can_tell():
    cannot = PowerNote(0.004, 0.027, "made up", "--full on ILSVRC")
    assert cannot.statement(2, 0.004).startswith("power: QUICK cannot tell")
    assert "--full on ILSVRC" in cannot.statement(2, 0.004)
    assert "not assessed" in PowerNote(0.02, None, "never measured", "x").statement(2, 0.01)


def test_every_experiment_states_its_power():
    for exp in EXPERIMENTS.values():
        assert exp.power is not None, exp.name
        assert exp.power.effect != 0 and exp.power.full and exp.power.measured, exp.name


# ---------------------------------------------------------------- relu-vs-tanh's threshold


def _arm(tmp_path, name: str, act: str, lr: float, seed: int, errors: list[float]) -> ArmRun:
    folder = tmp_path / name
    folder.mkdir()
    folder.joinpath("metrics.jsonl").write_text("".join(
        json.dumps({"epoch": e, "split": "train", "top1_err": err}) + "\n"
        for e, err in enumerate(errors)))
    return ArmRun(name, folder, {"activation": act, "lr": lr, "seed": seed})


def test_an_arm_above_the_threshold_is_extended_until_it_crosses_or_the_cap(tmp_path):
    plan = Plan("relu-vs-tanh", "x", 1, True)
    above = _arm(tmp_path, "a", "tanh", 0.01, 0, [0.8, 0.6, 0.5])
    assert relu_tanh.more_epochs(plan, above) == 3 + relu_tanh.EXTEND[True]
    crossed = _arm(tmp_path, "b", "relu", 0.01, 0, [0.6, 0.2])
    assert relu_tanh.more_epochs(plan, crossed) is None
    capped = _arm(tmp_path, "c", "tanh", 0.01, 0, [0.5] * relu_tanh.CAP[True])
    assert relu_tanh.more_epochs(plan, capped) is None


def test_an_arm_that_never_crosses_gives_a_bound_and_its_curve(tmp_path):
    plan = Plan("relu-vs-tanh", "x", 2, True)
    runs = [_arm(tmp_path, "relu-s0", "relu", 0.01, 0, [0.5, 0.3, 0.2]),
            _arm(tmp_path, "relu-s1", "relu", 0.01, 1, [0.5, 0.26, 0.24]),
            _arm(tmp_path, "tanh-s0", "tanh", 0.01, 0, [0.7, 0.5, 0.4, 0.35, 0.3, 0.28]),
            _arm(tmp_path, "tanh-s1", "tanh", 0.01, 1, [0.6, 0.4, 0.3, 0.2])]
    out = relu_tanh.analyse(plan, runs)
    assert out.details["never_reached"] == ["tanh-s0"]
    ratio_row = out.rows[-1]
    # seed 0: tanh trained 6 epochs without crossing, ReLU crossed at 2.5: ratio >= 6 / 2.5
    assert ratio_row["ours"][0] == pytest.approx(6 / 2.5) and "≥" in ratio_row["note"]
    assert out.effect["bounds"] == ["≥", ""]
    assert math.isinf(out.rows[1]["ours"][0]) and "not reached within 6" in out.rows[1]["note"]
    assert any(n.startswith("tanh-s0: never reached 25%") and "28.0%" in n for n in out.notes)
    assert out.draw(tmp_path / "fig.png").stat().st_size > 1000


# ---------------------------------------------------------------- run all


def test_run_all_reuses_finished_arms_and_writes_one_table(tmp_path, separable_data):
    data = separable_data(n=16, val=8, size=32, channels=3)
    root = tmp_path / "all"
    only = ["lrn-cifar", "depth"]  # depth has no default data: not run, with the reason
    first = run_all(cifar_data=data["source"], seeds=1, out=str(root), overrides=TOY,
                    only=only)
    assert [r["experiment"] for r in first["rows"]] == only
    assert first["rows"][0]["verdict"] in ("agrees", "disagrees", "inconclusive")
    assert set(first["rows"][0]["statuses"].values()) == {"trained"}
    lrn = json.loads((root / "lrn-cifar" / "results.json").read_text())
    assert lrn["power"]["statement"].startswith("power: QUICK cannot tell")  # said before
    assert lrn["power"]["tells"] is False and lrn["power"]["seeds"] == 1
    assert first["rows"][1]["verdict"] == "not run"
    assert "needs --data" in first["rows"][1]["reason"]
    again = run_all(cifar_data=data["source"], seeds=1, out=str(root), overrides=TOY,
                    only=only)
    assert set(again["rows"][0]["statuses"].values()) == {"skipped"}
    assert again["rows"][0]["ours"] == first["rows"][0]["ours"]
    saved = json.loads((root / SUMMARY_JSON).read_text())
    assert [r["experiment"] for r in saved["rows"]] == only
    md = (root / SUMMARY_MD).read_text()
    assert "| `lrn-cifar` | §3.3 |" in md and "| `depth` | §7 |" in md and "needs --data" in md


# ---------------------------------------------------------------- depth: budget or model


def _measured(curves: dict[str, tuple[list[float], list[float]]]):
    from alexnet.experiments.ablation import Measured

    records = {(key, 0): [{"epoch": e, "split": split, "top1_err": err}
                          for split, errs in zip(("train", "val"), pair, strict=True)
                          for e, err in enumerate(errs)] for key, pair in curves.items()}
    final = {k: {"top1_err": [r for r in v if r["split"] == "val"][-1]["top1_err"],
                 "top5_err": 0.0, "loss": 0.0} for k, v in records.items()}
    return Measured(final, records, {}, {})


@pytest.mark.parametrize("paper_train, cause", [(0.40, "budget"), (0.20, "model")])
def test_depth_says_whether_the_budget_or_the_model_explains_a_disagreement(paper_train,
                                                                            cause):
    from alexnet.experiments.depth import diagnose

    shallow = ([0.5, 0.30], [0.6, 0.45])  # the nets without a middle layer validate better
    m = _measured({"paper": ([0.6, paper_train], [0.7, 0.48]), "no-conv3": shallow,
                   "no-conv4": shallow, "no-conv5": shallow})
    d = diagnose(m)
    assert d["cause"] == cause and "48.00%" in d["text"] and "45.00%" in d["text"]
    better = _measured({"paper": ([0.6, 0.2], [0.7, 0.40]), "no-conv3": shallow})
    assert diagnose(better)["cause"] == "none"
