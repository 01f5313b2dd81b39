"""The loop on tiny generated in-memory data through the real data part: checkpoints and
metrics, exact resume, SIGTERM, NaN."""

import json
import os
import signal

import pytest
import torch

from alexnet.train.loop import TrainingDiverged, train
from alexnet.train.run_config import resolve_config
from alexnet.weights.checkpoint import load_checkpoint, load_model
from conftest import bare_run, on_train_batch


@pytest.fixture
def make_cfg(separable_data):
    """The run's config on 32 generated 64×64 grey images of 3 classes (4 batches of 8)."""
    data = separable_data(n=32, size=64)

    def cfg(**extra) -> dict:
        recipe = {"recipe": "test", "model": {"name": "paper", "image_size": 64}, "epochs": 2,
                  "batch_size": 8, "log_every": 2, "quick": False, "deterministic": True,
                  "optim": {"lr": 0.001}, "device": "cpu", "data": data}
        return resolve_config(recipe, extra)

    return cfg


def _weights(path) -> dict:
    return torch.load(path, weights_only=True)["model"]["state_dict"]


def test_two_epochs_write_config_metrics_and_checkpoints(tmp_path, make_cfg):
    summary = train(make_cfg(), tmp_path)
    assert summary["epochs_done"] == 2 and not summary["interrupted"]
    assert {"config.yaml", "metrics.jsonl", "last.pt", "best.pt"} <= {
        p.name for p in tmp_path.iterdir()}
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["split"]) for r in lines] == [(0, "train"), (0, "val"),
                                                         (1, "train"), (1, "val")]
    assert all(0.0 <= r["top1_err"] <= r["top5_err"] + 1 for r in lines if r["split"] == "val")
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert (state["epoch"], state["batch"]) == (2, 0)
    assert state["classes"] == ["class0", "class1", "class2"]
    assert state["config"]["distributed"]["global_batch"] == 8
    model, _ = load_model(tmp_path / "best.pt", expect_num_classes=3)
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 3)


def test_sigterm_then_resume_equals_an_uninterrupted_run(tmp_path, make_cfg, monkeypatch):
    full, cut = tmp_path / "full", tmp_path / "cut"
    train(make_cfg(), full)

    def sigterm(epoch: int, batch: int, x, y) -> None:
        if (epoch, batch) == (0, 1):
            os.kill(os.getpid(), signal.SIGTERM)

    with monkeypatch.context() as m:
        on_train_batch(m, sigterm)
        summary = train(make_cfg(), cut)
    assert summary["interrupted"]
    state = load_checkpoint(cut)  # SIGTERM mid-epoch left a loadable checkpoint
    assert (state["epoch"], state["batch"]) == (0, 2)
    assert not (cut / "metrics.jsonl").exists()
    train(None, cut, resume=True)
    a, b = _weights(full / "last.pt"), _weights(cut / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    opt_a = torch.load(full / "last.pt", weights_only=True)["optimizer"]["state"]
    opt_b = torch.load(cut / "last.pt", weights_only=True)["optimizer"]["state"]
    assert all(torch.equal(opt_a[i]["momentum_buffer"], opt_b[i]["momentum_buffer"])
               for i in opt_a)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, make_cfg, monkeypatch):
    def nan_from_epoch_1_batch_1(epoch: int, batch: int, x, y):
        return (torch.full_like(x, float("nan")), y) if (epoch, batch) >= (1, 1) else None

    on_train_batch(monkeypatch, nan_from_epoch_1_batch_1)
    with pytest.raises(TrainingDiverged, match="nan"):
        train(make_cfg(), tmp_path)
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["batch"]) == (1, 0)
    assert all(t.isfinite().all() for t in state["model"]["state_dict"].values())


def test_training_error_counts_top1_misses_of_the_training_batches():
    from torch import nn

    from alexnet.train.loop import StopRequest, train_epoch

    model = nn.Linear(4, 3)  # always predicts class 0: bias (1, 0, 0), zero weights, lr 0
    nn.init.zeros_(model.weight)
    with torch.no_grad():
        model.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    labels = [torch.tensor([0, 1, 2, 0]), torch.tensor([0, 0, 0, 2]), torch.tensor([1, 1, 0, 0])]
    batches = [(torch.randn(4, 4), y) for y in labels]
    r = train_epoch(bare_run(model, opt, batches, log_every=2), 0, 0, StopRequest())
    assert r.top1_err == pytest.approx(5 / 12) and r.stopped_at is None
