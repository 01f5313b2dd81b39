"""`evaluate` (centre and ten views, ensembles, loss, totals kept on the device), top-k error,
per-class accuracy, confusion, and `alexnet eval` on a registered in-memory source through
the real data part."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from alexnet.cli import main
from alexnet.data import DataConfig, build_loaders
from alexnet.errors import AlexNetError, CheckpointError
from alexnet.evaluation import (
    average_views,
    confusion_matrix,
    ensemble,
    evaluate,
    over_views,
    per_class_accuracy,
    top_classes,
    topk_error,
)
from alexnet.evaluation.checkpoints_eval import evaluate_checkpoints
from alexnet.models import create_model
from alexnet.weights.checkpoint import load_checkpoint, load_model
from conftest import EVAL_SIZE as SIZE
from conftest import eval_images, hand_views, sensitive, write_checkpoint


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, eval_data):
    """Three checkpoints of runs on 12 registered images (3 classes), and two more sources
    for them: `six` (6 other images) and `twelve` (the same 12)."""
    d = tmp_path_factory.mktemp("ckpt")
    data = eval_data(n=12)
    return {"a": write_checkpoint(d / "a.pt", data, seed=0),
            "b": write_checkpoint(d / "b.pt", data, seed=1),
            "c5": write_checkpoint(d / "c5.pt", data, classes=5, seed=2),
            "twelve": data["source"], "six": eval_data(n=6, seed=8)["source"]}


def _bundle(ckpt, source):
    """The data part's loaders for `ckpt`'s data config on `source`, as `alexnet eval` builds
    them."""
    mapping = {**load_checkpoint(ckpt)["config"]["data"], "source": source}
    return build_loaders(DataConfig.from_dict(mapping), batch_size=128, device="cpu", seed=0)


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


class ListBundle:
    """`DataBundle.eval_loader` over fixed tensors: x (N, C, s, s) centre, (N, V, C, s, s) ten."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int = 4, preprocess=None):
        self.x, self.y, self.batch = x, y, batch
        self.preprocess = preprocess or {"crop": 24}

    def eval_loader(self, views="center", split="val", batch_size=None, limit=None):
        n, bs = limit or len(self.y), batch_size or self.batch
        return [(self.x[i:min(i + bs, n)], self.y[i:min(i + bs, n)]) for i in range(0, n, bs)]


def _small(classes: int = 4, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # any classifier; a small one keeps this fast
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 5, stride=2), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32, classes)).eval()


def test_ten_view_averaging_matches_a_manual_computation():
    model = _small()
    x = torch.randn(6, 10, 3, 24, 24) * 3  # (B, V, C, s, s)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    r = evaluate(model, ListBundle(x, y), "ten")
    assert r.probs.shape == (6, 4) and torch.equal(r.targets, y) and r.images == 6
    with torch.no_grad():  # one view at a time, softmax, then the mean of the ten
        logits = torch.stack([model(x[:, v]) for v in range(10)], 1)  # (B, V, classes)
        manual = torch.stack([F.softmax(logits[:, v], dim=1) for v in range(10)]).mean(0)
    assert torch.allclose(r.probs, manual, atol=1e-5)
    assert torch.allclose(r.probs.sum(1), torch.ones(6))
    assert r.loss == pytest.approx(F.nll_loss(manual.log(), y).item(), rel=1e-5)
    assert r.top1_err == pytest.approx(topk_error(manual, y)[1])
    assert torch.equal(r.confusion, confusion_matrix(manual, y, 4))
    # averaging probabilities differs from averaging logits when the views disagree
    assert not torch.allclose(r.probs, F.softmax(logits.mean(1), dim=1), atol=1e-4)


def test_over_views_runs_the_paper_model_on_every_view():
    model = sensitive(create_model("paper", num_classes=4, image_size=SIZE))
    x = torch.randn(2, 10, 3, SIZE, SIZE)
    logits = over_views(model, x)
    assert logits.shape == (2, 10, 4)
    with torch.no_grad():
        assert torch.allclose(logits[1, 7], model(x[1, 7:8])[0], atol=1e-4)


def _training_loop_numbers(model, batches):
    """What train/loop.py's per-epoch validation computed before `evaluate` replaced it."""
    totals = torch.zeros(4, dtype=torch.float64)
    with torch.no_grad():
        for x, y in batches:
            logits = model(x).float()
            hit = logits.topk(min(5, logits.shape[1]), dim=1).indices == y[:, None]
            totals += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(),
                                   hit[:, 0].sum().double(), hit.any(1).sum().double(),
                                   torch.tensor(float(len(y)), dtype=torch.float64)])
    loss, ok1, ok5, n = totals.tolist()
    return {"loss": loss / n, "top1_err": 1 - ok1 / n, "top5_err": 1 - ok5 / n, "images": n}


@pytest.mark.parametrize("classes", [4, 7])
def test_one_model_centre_views_gives_the_training_loops_numbers(classes):
    model = _small(classes)
    x, y = torch.randn(10, 3, 24, 24) * 3, torch.arange(10) % classes
    data = ListBundle(x, y)
    want = _training_loop_numbers(model, data.eval_loader())
    for keep in (True, False):
        r = evaluate(model, data, keep_outputs=keep)
        assert (r.loss, r.top1_err, r.top5_err, r.images) == (
            want["loss"], want["top1_err"], want["top5_err"], want["images"])
        assert r.members == [] and r.notes == []
        if keep:
            assert torch.allclose(r.probs, F.softmax(model(x), 1)) and torch.equal(r.targets, y)
            assert r.loss == pytest.approx(F.nll_loss(r.probs.log(), y).item(), rel=1e-5)
        else:
            assert r.probs is None and r.targets is None and r.confusion is None
    assert evaluate(model, data, channels_last=True).top1_err == want["top1_err"]
    assert evaluate(model, data, batch_size=3, limit=7).images == 7


def test_evaluate_sums_totals_over_processes_and_scores_ensembles():
    a, b = _small(seed=0), _small(seed=1)
    x, y = torch.randn(8, 3, 24, 24) * 3, torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    seen = []

    def two_processes(t):  # an all-reduce-sum over two processes that saw the same images
        seen.append(t.clone())
        return t * 2

    r = evaluate([a, b], ListBundle(x, y), reduce=two_processes, keep_outputs=False)
    assert seen[0].dtype == torch.float64 and len(seen[0]) == 4 + 2 * 2
    assert r.images == 16 and r.probs is None
    with torch.no_grad():
        pa, pb = F.softmax(a(x), 1), F.softmax(b(x), 1)
    both = (pa + pb) / 2
    assert r.top1_err == pytest.approx(topk_error(both, y)[1])
    assert r.loss == pytest.approx(F.nll_loss(both.log(), y).item(), rel=1e-5)
    assert [m["top1_err"] for m in r.members] == pytest.approx(
        [topk_error(pa, y)[1], topk_error(pb, y)[1]])


def test_evaluate_refuses_bad_views_limits_and_empty_data():
    model, data = _small(), ListBundle(torch.randn(2, 3, 24, 24), torch.tensor([0, 1]))
    with pytest.raises(AlexNetError, match="views must be"):
        evaluate(model, data, "five")
    with pytest.raises(AlexNetError, match="positive number"):
        evaluate(model, data, limit=0)
    with pytest.raises(AlexNetError, match="empty"):
        evaluate(model, ListBundle(torch.zeros(0, 3, 24, 24), torch.zeros(0, dtype=torch.long)))
    uncropped = ListBundle(torch.randn(2, 10, 3, 24, 24), torch.tensor([0, 1]),
                           preprocess={"crop": None})
    assert "whole images" in evaluate(model, uncropped, "ten").notes[0]


def test_top_classes_clips_k():
    p, i = top_classes(torch.tensor([[0.1, 0.7, 0.2]]), 5)
    assert i.tolist() == [[1, 2, 0]] and p[0, 0].item() == pytest.approx(0.7)
    assert top_classes(torch.tensor([[0.1, 0.7, 0.2]]), 0)[1].tolist() == [[1]]


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


def test_the_checkpoints_data_gives_hand_normalised_centre_and_ten_views(ckpts):
    """The real loaders on a checkpoint's data config and source: the images normalised with
    the normalisation the checkpoint stored (what `predict` uses), then cropped."""
    bundle = _bundle(ckpts["a"], ckpts["twelve"])
    norm = load_checkpoint(ckpts["a"])["data"]["normalization"]
    images, labels = eval_images(12)
    x, y = next(iter(bundle.eval_loader("center")))
    assert x.shape == (12, 3, SIZE, SIZE) and torch.equal(y, labels)
    assert torch.equal(x, hand_views(images, norm))
    x10, _ = next(iter(bundle.eval_loader("ten")))
    assert torch.equal(x10, hand_views(images, norm, "ten"))
    assert torch.equal(x10[:, 4], x) and torch.equal(x10[:, 9], x.flip(-1))


def test_ensemble_of_two_identical_checkpoints_equals_one(ckpts):
    six = ckpts["six"]
    one = evaluate_checkpoints([ckpts["a"]], six, views="ten", per_class=True, confusion=True,
                               progress=False)
    two = evaluate_checkpoints([ckpts["a"], ckpts["a"]], six, views="ten", per_class=True,
                               confusion=True, progress=False)
    # the checkpoint's data config (crop 64 of 72: ten views) with its source replaced
    assert one["images"] == 6 and one["views"] == "ten" and one["data"] == six
    for key in ("top1_err", "top5_err", "per_class", "confusion"):
        assert one[key] == two[key]
    assert [m["top1_err"] for m in two["members"]] == [one["top1_err"]] * 2
    assert [row["images"] for row in one["per_class"]] == [2, 2, 2]


def test_ensemble_of_two_models_averages_their_softmax(ckpts):
    both = evaluate_checkpoints([ckpts["a"], ckpts["b"]], None, confusion=True, progress=False)
    images, labels = eval_images(12)  # their own source's centre views, made by hand
    x = hand_views(images, load_checkpoint(ckpts["a"])["data"]["normalization"])
    with torch.no_grad():
        probs = sum(F.softmax(load_model(p)[0](x), 1) for p in (ckpts["a"], ckpts["b"])) / 2
    errs = topk_error(probs, labels)
    assert both["top1_err"] == pytest.approx(errs[1])
    assert both["confusion"] == confusion_matrix(probs, labels, 3).tolist()


def test_wrong_class_count_and_truncated_checkpoint_are_clear_errors(ckpts, tmp_path):
    with pytest.raises(CheckpointError, match="expected 3 classes.*has 5"):
        evaluate_checkpoints([ckpts["c5"]], ckpts["six"], progress=False)
    bad = tmp_path / "cut.pt"
    bad.write_bytes(ckpts["a"].read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="truncated"):
        evaluate_checkpoints([bad], ckpts["six"], progress=False)


def test_cli_eval_gives_evaluates_error_on_the_same_model_and_data(ckpts, capsys):
    assert main(["eval", str(ckpts["a"]), "--views", "center", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    model = load_model(ckpts["a"])[0]
    direct = evaluate(model, _bundle(ckpts["a"], ckpts["twelve"]), "center")
    assert out["images"] == direct.images == 12 and out["data"] == ckpts["twelve"]
    assert out["top1_err"] == direct.top1_err and out["top5_err"] == direct.top5_err


def test_cli_eval_json(ckpts, capsys):
    assert main(["eval", str(ckpts["a"]), str(ckpts["b"]), "--data", ckpts["six"],
                 "--per-class", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["views"] == "center" and out["images"] == 6 and len(out["members"]) == 2
    assert 0 <= out["top1_err"] <= 1 and len(out["per_class"]) == 3
    assert main(["eval", str(ckpts["c5"]), "--data", ckpts["six"]]) == 2
    assert "expected 3 classes" in capsys.readouterr().err
