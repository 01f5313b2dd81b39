"""Inference, ten-view averaging, top-k error, ensembles, per-class accuracy, confusion, and
`alexnet eval` on a fake data part."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from alexnet.cli import main
from alexnet.errors import AlexNetError, CheckpointError
from alexnet.evaluation import (
    average_views,
    confusion_matrix,
    ensemble,
    infer,
    per_class_accuracy,
    topk_error,
)
from alexnet.evaluation.run import evaluate_checkpoints
from alexnet.models import create_model
from test_eval_fakes import SIZE, make_builder, sensitive, write_checkpoint


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    return {"a": write_checkpoint(d / "a.pt", seed=0), "b": write_checkpoint(d / "b.pt", seed=1),
            "c5": write_checkpoint(d / "c5.pt", classes=5, seed=2)}


def test_topk_error_on_hand_made_logits():
    logits = torch.tensor([[5.0, 4, 3, 2, 1, 0, -1],  # target 0: top-1 hit
                           [5.0, 4, 3, 2, 1, 0, -1],  # target 4: 5th best -> top-5 hit only
                           [5.0, 4, 3, 2, 1, 0, -1],  # target 5: 6th -> both miss
                           [0.0, 1, 0, 0, 0, 0, 9]])  # target 6: top-1 hit
    targets = torch.tensor([0, 4, 5, 6])
    errs = topk_error(logits, targets, k=(1, 2, 5))
    assert errs[1] == pytest.approx(0.5)
    assert errs[2] == pytest.approx(0.5)
    assert errs[5] == pytest.approx(0.25)
    # fewer classes than k: the target is always within the top k
    assert topk_error(logits[:, :3], torch.tensor([2, 2, 1, 0]), k=(1, 5)) == {1: 1.0, 5: 0.0}
    with pytest.raises(AlexNetError):
        topk_error(logits, targets[:2])


def test_ten_view_averaging_matches_a_manual_computation():
    model = torch.nn.Sequential(  # infer needs any classifier; a small one keeps this fast
        torch.nn.Conv2d(3, 8, 5, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32, 4)).eval()
    x = torch.randn(6, 10, 3, 24, 24) * 3  # (B, V, C, s, s)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    loader = [(x[:4], y[:4]), (x[4:], y[4:])]
    logits, targets = infer(model, loader, progress=False)
    assert logits.shape == (6, 10, 4) and torch.equal(targets, y)
    probs = average_views(logits)
    with torch.no_grad():  # one view at a time, softmax, then the mean of the ten
        manual = torch.stack([F.softmax(model(x[:, v]), dim=1) for v in range(10)]).mean(0)
    assert torch.allclose(probs, manual, atol=1e-5)
    assert torch.allclose(probs.sum(1), torch.ones(6))
    # averaging probabilities differs from averaging logits when the views disagree
    assert not torch.allclose(probs, F.softmax(logits.mean(1), dim=1), atol=1e-4)


def test_infer_runs_the_paper_model_on_ten_views():
    model = sensitive(create_model("paper", num_classes=4, image_size=SIZE))
    x = torch.randn(2, 10, 3, SIZE, SIZE)
    logits, _ = infer(model, [(x, torch.tensor([0, 1]))], progress=False)
    with torch.no_grad():
        assert torch.allclose(logits[1, 7], model(x[1, 7:8])[0], atol=1e-4)


def test_centre_views_give_plain_softmax():
    logits = torch.randn(5, 3)
    assert torch.allclose(average_views(logits), F.softmax(logits, 1))


def test_confusion_matrix_and_per_class_accuracy():
    scores = F.one_hot(torch.tensor([0, 1, 1, 2, 0, 0]), 4).float()  # predictions
    targets = torch.tensor([0, 1, 2, 2, 1, 0])
    cm = confusion_matrix(scores, targets, 4)
    expected = torch.tensor([[2, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]])
    assert torch.equal(cm, expected)
    acc, counts = per_class_accuracy(scores, targets, 4)
    assert counts.tolist() == [2, 2, 2, 0]
    assert acc[:3].tolist() == [1.0, 0.5, 0.5] and torch.isnan(acc[3])


def test_ensemble_is_the_mean_and_checks_shapes():
    a, b = torch.rand(4, 3), torch.rand(4, 3)
    assert torch.allclose(ensemble([a, b]), (a + b) / 2)
    with pytest.raises(AlexNetError, match="shape"):
        ensemble([a, torch.rand(4, 5)])


def test_ensemble_of_two_identical_checkpoints_equals_one(ckpts):
    build = make_builder(n=6)
    one = evaluate_checkpoints([ckpts["a"]], "fake", views="ten", build_data=build,
                               per_class=True, confusion=True, progress=False)
    two = evaluate_checkpoints([ckpts["a"], ckpts["a"]], "fake", views="ten", build_data=build,
                               per_class=True, confusion=True, progress=False)
    assert one["images"] == 6 and one["views"] == "ten"
    for key in ("top1_err", "top5_err", "per_class", "confusion"):
        assert one[key] == two[key]
    assert [m["top1_err"] for m in two["members"]] == [one["top1_err"]] * 2
    assert build.calls[0]["source"] == "fake"  # the checkpoint's data config, source replaced
    assert build.calls[0]["crop"] == SIZE


def test_ensemble_of_two_models_averages_their_softmax(ckpts):
    build = make_builder(n=6)
    both = evaluate_checkpoints([ckpts["a"], ckpts["b"]], "fake", build_data=build,
                                confusion=True, progress=False)
    from alexnet.checkpoint import load_model

    x = torch.cat([b[0] for b in build(  # the same batches the fake loader gives
        {}, batch_size=128, device=torch.device("cpu")).eval_loader("center")])
    with torch.no_grad():
        probs = sum(F.softmax(load_model(p)[0](x), 1) for p in (ckpts["a"], ckpts["b"])) / 2
    errs = topk_error(probs, build.labels)
    assert both["top1_err"] == pytest.approx(errs[1])
    assert both["confusion"] == confusion_matrix(probs, build.labels, 3).tolist()


def test_wrong_class_count_and_truncated_checkpoint_are_clear_errors(ckpts, tmp_path):
    with pytest.raises(CheckpointError, match="expected 3 classes.*has 5"):
        evaluate_checkpoints([ckpts["c5"]], "fake", build_data=make_builder(n=3),
                             progress=False)
    bad = tmp_path / "cut.pt"
    bad.write_bytes(ckpts["a"].read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        evaluate_checkpoints([bad], "fake", build_data=make_builder(), progress=False)


def test_cli_eval_json(ckpts, monkeypatch, capsys):
    monkeypatch.setattr("alexnet.evaluation.run.default_data_builder", make_builder(n=6))
    assert main(["eval", str(ckpts["a"]), str(ckpts["b"]), "--data", "fake", "--per-class",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["views"] == "center" and out["images"] == 6 and len(out["members"]) == 2
    assert 0 <= out["top1_err"] <= 1 and len(out["per_class"]) == 3
    assert main(["eval", str(ckpts["c5"]), "--data", "fake"]) == 2
    assert "expected 3 classes" in capsys.readouterr().err
