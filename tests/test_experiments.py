"""The paper's experiments (`alexnet experiment`) end to end at toy size on generated data
registered as memory sources (through the real training and evaluation code); resuming an
interrupted experiment; the verdict rule on hand-made numbers; the four-layer net's shapes."""

from __future__ import annotations

import json
import math
import os
import signal

import pytest
import torch
import torch.nn.functional as F

from alexnet.cli import main
from alexnet.errors import ConfigError
from alexnet.experiments import report_experiment, run_experiment
from alexnet.experiments.arms import arm_state
from alexnet.experiments.relu_tanh import epochs_to
from alexnet.experiments.verdict import AGREES, DISAGREES, INCONCLUSIVE, verdict
from alexnet.models import create_model
from alexnet.models.cifar4 import LocallyConnected2d
from alexnet.models.local_response_norm import LocalResponseNorm
from alexnet.models.profile import layer_table
from alexnet.weights.checkpoint import save_checkpoint
from conftest import on_train_batch

# a few steps per arm: the experiments' own epochs and batches are far too many for a test
TOY = ["epochs=1", "batch_size=8", "train_batches=2", "log_every=1"]


# ---------------------------------------------------------------- the verdict


@pytest.mark.parametrize("effects, paper, word", [
    ([0.020, 0.030, 0.025], 0.02, AGREES),  # mean 0.025, std 0.005: clear of zero, same sign
    ([-0.020, -0.030, -0.025], 0.02, DISAGREES),  # as far from zero, the other sign
    ([0.010, -0.008, 0.004], 0.02, INCONCLUSIVE),  # mean 0.002 < std 0.009
    ([0.03, 0.001], 0.02, INCONCLUSIVE),  # mean 0.0155 < std 0.0205: zero inside the spread
    ([1.2, 1.5], math.log(6), AGREES),  # log-ratios against log 6
    ([0.0, 0.0], 0.02, INCONCLUSIVE),  # no effect at all
    ([], 0.02, INCONCLUSIVE),  # nothing measured
    ([0.02, float("nan")], 0.02, INCONCLUSIVE),
    ([0.02, 0.03], 0.0, INCONCLUSIVE),  # a paper effect of 0 has no direction
])
def test_the_verdict_on_hand_made_numbers(effects, paper, word):
    v = verdict(effects, paper, floor=0.01)
    assert v.word == word, v.reason
    assert v.n == len(effects)


def test_one_seed_has_no_spread_so_the_floor_decides():
    assert verdict([0.015], 0.02, floor=0.01).word == AGREES
    assert verdict([-0.015], 0.02, floor=0.01).word == DISAGREES
    v = verdict([0.005], 0.02, floor=0.01)
    assert v.word == INCONCLUSIVE and v.spread == 0.01 and "floor" in v.reason
    assert verdict([0.01], 0.02, floor=0.01).word == INCONCLUSIVE  # must exceed the floor


def test_the_verdict_reports_its_numbers_and_rule():
    v = verdict([0.02, 0.03], 0.02, floor=0.01)
    d = v.asdict()
    assert d["mean"] == pytest.approx(0.025) and d["spread"] == pytest.approx(0.00707, abs=1e-5)
    assert "standard deviation" in d["rule"] and d["paper"] == 0.02


def test_epochs_to_the_threshold_interpolates_between_epoch_ends():
    curve = [(1, 0.6), (2, 0.4), (3, 0.2), (4, 0.1)]
    assert epochs_to(curve, 0.25, 0.9) == pytest.approx(2.75)  # 0.4 -> 0.2 crosses at 3/4
    assert epochs_to([(1, 0.2)], 0.25, 0.9) == pytest.approx(0.65 / 0.7)  # from chance at 0
    assert epochs_to([(1, 0.6), (2, 0.5)], 0.25, 0.9) is None


# ---------------------------------------------------------------- the four-layer net


def test_cifar4_shapes_follow_cuda_convnet():
    """layers-conv-local-*.cfg at 32 px: 64×32², pool (rounded up) 16², 64×16², 8², two
    locally-connected layers of 32×8², fc10; at 24 px (the cropped provider) 24, 12, 6."""
    model = create_model("cifar4", num_classes=10)
    rows = {r.name: r.output_shape for r in layer_table(model)}
    assert rows["features.conv1"] == [64, 32, 32] and rows["features.pool1"] == [64, 16, 16]
    assert rows["features.conv2"] == [64, 16, 16] and rows["features.pool2"] == [64, 8, 8]
    assert rows["features.local3"] == [32, 8, 8] and rows["features.local4"] == [32, 8, 8]
    assert rows["classifier.fc10"] == [10]
    # conv1 4,864 + conv2 102,464 + local3 64·32·576 + 32·64 + local4 64·32·288 + 32·64
    # + fc10 2048·10 + 10
    assert sum(p.numel() for p in model.parameters()) == 1_901_386
    small = create_model("cifar4", num_classes=10, image_size=24, in_channels=1)
    rows = {r.name: r.output_shape for r in layer_table(small)}
    assert rows["features.pool1"] == [64, 12, 12] and rows["features.local4"] == [32, 6, 6]
    assert small(torch.zeros(2, 1, 24, 24)).shape == (2, 10)
    with pytest.raises(ConfigError, match="built for 24×24 inputs"):
        small(torch.zeros(1, 1, 32, 32))


def test_cifar4_options_lrn_and_tanh():
    plain = create_model("cifar4")
    assert not any(isinstance(m, LocalResponseNorm | torch.nn.Tanh) for m in plain.modules())
    net = create_model("cifar4", lrn=True, activation="tanh")
    assert sum(isinstance(m, LocalResponseNorm) for m in net.modules()) == 2
    assert sum(isinstance(m, torch.nn.Tanh) for m in net.modules()) == 4
    groups = {g["name"]: g for g in net.optim_groups()}
    assert groups["features.conv1.weight"]["wd_mult"] == 0.0  # wc=0 on the conv layers
    assert groups["features.local3.weight"]["wd_mult"] == 1.0
    assert (groups["classifier.fc10.bias"]["lr_mult"], groups["classifier.fc10.bias"]["wd_mult"]
            ) == (2.0, 0.0)  # epsB = 2·epsW, no decay


def test_a_locally_connected_layer_is_a_convolution_per_position():
    torch.manual_seed(0)
    layer = LocallyConnected2d(4, 5, in_size=6)
    torch.nn.init.normal_(layer.weight)
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(2, 4, 6, 6)
    out = layer(x)  # (2, 5, 6, 6)
    for i, j in [(0, 0), (2, 3), (5, 5)]:
        kernel = layer.weight[i * 6 + j].view(5, 4, 3, 3)  # this position's own kernels
        want = F.conv2d(F.pad(x, (1, 1, 1, 1))[:, :, i:i + 3, j:j + 3], kernel)[:, :, 0, 0]
        assert torch.allclose(out[:, :, i, j], want + layer.bias[:, i, j], atol=1e-5)


# ---------------------------------------------------------------- end to end


def _results(folder) -> dict:
    data = json.loads((folder / "results.json").read_text())
    assert (folder / "results.md").is_file() and (folder / "figure.png").stat().st_size > 1000
    assert data["verdict"]["word"] in (AGREES, DISAGREES, INCONCLUSIVE)
    assert data["mode"] == "QUICK" and "rule" in data["verdict"]
    return data


def test_relu_vs_tanh_end_to_end(tmp_path, separable_data, monkeypatch):
    from alexnet.experiments import relu_tanh

    monkeypatch.setitem(relu_tanh.CAP, True, 4)  # the seeds' arms continue to at most 4
    monkeypatch.setitem(relu_tanh.EXTEND, True, 2)
    data = separable_data(n=16, val=8, size=32, channels=3)
    out = tmp_path / "relu"
    results = run_experiment("relu-vs-tanh", data=data["source"], seeds=1, out=str(out),
                             overrides=[*TOY, "epochs=2", "train_batches=1"])
    saved = _results(out)
    chosen = {f"{act}-lr{lr:g}-seed0" for act, lr in saved["details"]["fastest_lr"].items()}
    for name in chosen:  # crossed 25% (no more epochs) or continued in steps of 2 up to 4
        trained = saved["details"]["epochs_trained"][name]
        reached = saved["details"]["epochs_to_threshold"][name] is not None
        assert trained in (2, 4) and (reached or trained == 4)
    assert report_experiment(out)["details"]["fastest_lr"] == saved["details"]["fastest_lr"]
    assert saved["verdict"] == results["verdict"]
    assert [a["name"] for a in saved["arms"]] == [
        f"{act}-lr{lr}-seed0" for act in ("relu", "tanh") for lr in ("0.001", "0.003", "0.01")]
    arm = saved["arms"][0]
    assert arm["overrides"]["model.activation"] == "relu" and arm["overrides"]["epochs"] == 2
    assert arm["overrides"]["optim.lr"] == 0.001 and arm["overrides"]["seed"] == 0
    assert arm["overrides"]["data.source"] == data["source"]
    assert arm["overrides"]["optim.weight_decay"] == 0.0 and not arm["overrides"]["data.flip"]
    assert set(saved["details"]["fastest_lr"]) == {"relu", "tanh"}
    assert "not the paper's CIFAR-10" in saved["data_description"]
    md = (out / "results.md").read_text()
    assert "| ratio tanh / ReLU |" in md and "6.00×" in md and "**Verdict:" in md
    # every arm is an ordinary run folder
    assert main(["eval", str(out / "arms" / "tanh-lr0.01-seed0")]) == 0


def test_an_interrupted_experiment_continues_where_it_stopped(tmp_path, separable_data,
                                                             monkeypatch):
    data = separable_data(n=16, val=8, size=32, channels=3)
    out = tmp_path / "lrn"
    arms_started = []

    def sigterm_in_the_second_arm(epoch, batch, x, y):
        if (epoch, batch) == (0, 0):
            arms_started.append(1)
            if len(arms_started) == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    with monkeypatch.context() as m:
        on_train_batch(m, sigterm_in_the_second_arm)
        assert run_experiment("lrn-cifar", data=data["source"], seeds=1, out=str(out),
                              overrides=TOY) is None
    assert not (out / "results.json").exists()
    state = torch.load(out / "arms" / "lrn-on-seed0" / "last.pt", weights_only=True)
    assert (state["epoch"], state["batch"]) == (0, 1)  # stopped inside its epoch
    with pytest.raises(ConfigError, match="holds an experiment run with seeds=1"):
        run_experiment("lrn-cifar", data=data["source"], seeds=2, out=str(out), overrides=TOY)
    results = run_experiment("lrn-cifar", data=data["source"], seeds=1, out=str(out),
                             overrides=TOY)
    assert [(a["name"], a["status"]) for a in results["arms"]] == [
        ("lrn-off-seed0", "skipped"), ("lrn-on-seed0", "resumed")]
    saved = _results(out)
    assert [r["paper"] for r in saved["rows"]] == [0.13, 0.11, pytest.approx(0.02)]
    assert saved["arms"][1]["overrides"]["model.lrn"] is True
    again = run_experiment("lrn-cifar", data=data["source"], seeds=1, out=str(out),
                           overrides=TOY)  # nothing left to train: both skipped
    assert {a["status"] for a in again["arms"]} == {"skipped"}
    assert report_experiment(out)["verdict"] == again["verdict"]


@pytest.mark.parametrize("epoch, batch, stop_reason, state", [
    (5, 0, "", "finished"), (3, 0, "", "unfinished"), (3, 7, "", "unfinished"),
    (3, 0, "plateau", "finished"),  # §5's rule ended it after its last reduction
    (2, 0, "chance", "finished"),  # never left chance: resuming would not help
])
def test_what_counts_as_a_finished_arm(tmp_path, epoch, batch, stop_reason, state):
    assert arm_state(tmp_path) == "new"
    (tmp_path / "config.yaml").write_text("epochs: 5\n")
    assert arm_state(tmp_path) == "started"
    save_checkpoint({"config": {"epochs": 5}, "epoch": epoch, "batch": batch,
                     "scheduler": {"stop_reason": stop_reason}}, tmp_path / "last.pt")
    assert arm_state(tmp_path) == state


def test_ensemble_then_views_of_its_runs(tmp_path, eval_data):
    data = eval_data(n=12, classes=3)
    out = tmp_path / "ensemble"
    results = run_experiment("ensemble", data=data["source"], seeds=2, out=str(out),
                             overrides=[*TOY, "batch_size=4"])
    saved = _results(out)
    assert saved["details"]["k"] == [1, 2] and len(saved["details"]["members"]) == 2
    assert results["effect"]["paper"] == pytest.approx(0.026)
    members = [m["top1_err"] for m in saved["details"]["members"]]
    assert saved["rows"][0]["ours"] == members
    assert saved["details"]["top1_err"][1] == saved["rows"][1]["ours"][0]
    views = tmp_path / "views"
    run_experiment("views", source=str(out), out=str(views))  # no training: the same nets
    saved = _results(views)
    assert "--seeds" not in saved["command"] and saved["seeds"] == 2
    assert [a["name"] for a in saved["arms"]] == ["paper-seed0", "paper-seed1"]
    runs = saved["details"]["runs"]
    assert {r[v]["images"] for r in runs.values() for v in ("center", "ten")} == {12}
    assert saved["rows"][0]["ours"] == pytest.approx(members)  # centre views, as ensemble's


def test_views_trains_its_own_run(tmp_path, eval_data):
    data = eval_data(n=12, classes=3)
    out = tmp_path / "views"
    run_experiment("views", data=data["source"], seeds=1, out=str(out),
                   overrides=[*TOY, "batch_size=4"])
    saved = _results(out)
    assert saved["effect"]["paper"] == pytest.approx(0.015)
    assert len(saved["effect"]["values"]) == 1 and saved["verdict"]["spread"] == 0.005


def test_the_cli_lists_and_refuses_with_one_line(capsys, tmp_path):
    assert main(["experiment", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["relu-vs-tanh", "towers", "lrn-cifar", "lrn", "overlap",
                                         "dropout", "views", "kernels", "retrieval",
                                         "ensemble", "depth"]
    assert all(r["cost"]["quick"] and r["cost"]["full"] and r["section"] for r in rows)
    assert main(["experiment", "list"]) == 0 and "§3.3" in capsys.readouterr().out
    cases = [(["experiment", "run", "nosuch"], "unknown experiment 'nosuch'"),
             (["experiment", "run", "lrn-cifar", "model.lrn=true"], "sets it per arm"),
             (["experiment", "run", "views"], "views needs --data"),
             (["experiment", "run", "lrn-cifar", "--from", "x"], "trains its own runs"),
             (["experiment", "run", "views", "--from", "x", "--seeds", "2"], "--seeds does not"),
             (["experiment", "report", str(tmp_path)], "not an experiment folder")]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("error: "), err


def test_a_run_written_before_a_key_existed_is_the_same_run_at_its_default():
    from alexnet.experiments.arms import same_config

    ours = {"epochs": 4, "dist_timeout": 1800, "optim": {"lr": 0.01, "momentum": 0.9}}
    default = {"epochs": 90, "dist_timeout": 1800, "optim": {"lr": 0.01, "momentum": 0.9}}
    older = {"epochs": 4, "optim": {"lr": 0.01}}  # written before dist_timeout, momentum
    assert same_config(ours, older, default)
    assert not same_config(ours, older)  # without the defaults, a missing key differs
    assert not same_config({**ours, "dist_timeout": 60}, older, default)  # not the default
    assert not same_config(ours, {**older, "epochs": 5}, default)  # a value differs
