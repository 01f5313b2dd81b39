"""Every figure is written as a non-empty PNG: Fig. 3 kernels (one block per tower), Fig. 4 left
and right, learning curves with lr changes, confusion matrix."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from alexnet.figures import (
    confusion_figure,
    conv1_kernels_figure,
    learning_curves_figure,
    neighbors_figure,
    predictions_figure,
    read_metrics,
)
from alexnet.figures.curves import lr_changes
from alexnet.models import create_model


def _check_png(path, min_size=(200, 150)):
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.width >= min_size[0] and im.height >= min_size[1]
        return im.size


def test_conv1_kernels_one_block_per_tower(tmp_path):
    paper = create_model("paper", num_classes=3, image_size=64)
    owt = create_model("owt", num_classes=3)
    w2 = _check_png(conv1_kernels_figure(paper.conv1.weight, tmp_path / "k2.png",
                                         towers=paper.towers))
    w1 = _check_png(conv1_kernels_figure(owt.conv1.weight[:48], tmp_path / "k1.png", towers=1))
    # 48 kernels in one block vs 48 + 48 in two: same width, the two-tower figure taller
    assert w2[0] == w1[0] and w2[1] > w1[1]
    _check_png(conv1_kernels_figure(torch.randn(96, 1, 11, 11), tmp_path / "grey.png", towers=2))


def test_conv1_blocks_hold_their_towers_channels(tmp_path, monkeypatch):
    """Channels [0:48] go to the first block and [48:96] to the second."""
    seen = []
    import alexnet.figures.kernels as kernels

    real = kernels.make_grid
    monkeypatch.setattr(kernels, "make_grid", lambda t, **kw: seen.append(t) or real(t, **kw))
    w = torch.randn(96, 3, 11, 11)
    conv1_kernels_figure(w, tmp_path / "k.png", towers=2)
    assert len(seen) == 2 and torch.equal(seen[0], w[:48]) and torch.equal(seen[1], w[48:])


def test_predictions_and_neighbors_figures(tmp_path):
    images = [torch.randint(0, 255, (3, 40, 50), dtype=torch.uint8) for _ in range(5)]
    probs = torch.softmax(torch.randn(5, 5), 1).sort(1, descending=True).values
    names = [[f"class {j}" for j in range(5)] for _ in range(5)]
    _check_png(predictions_figure(images, probs, names, tmp_path / "pred.png",
                                  true_names=["class 0", None, "class 3", "x", "class 4"]))
    neigh = torch.rand(2, 6, 3, 32, 32)
    _check_png(neighbors_figure(images[:2], neigh, tmp_path / "nn.png",
                                distances=torch.rand(2, 6),
                                labels=[["a"] * 6, ["b"] * 6]))


def test_confusion_figure(tmp_path):
    cm = torch.tensor([[5, 1, 0], [2, 3, 1], [0, 0, 6]])
    _check_png(confusion_figure(cm, ["cat", "dog", "bird"], tmp_path / "cm.png"))
    _check_png(confusion_figure(torch.randint(0, 9, (40, 40)), [str(i) for i in range(40)],
                                tmp_path / "cm40.png"))


def _records():
    recs = []
    for e in range(6):
        lr = 0.01 if e < 3 else 0.001
        recs.append({"epoch": e, "split": "train", "loss": 2.0 - 0.2 * e, "lr": lr})
        recs.append({"epoch": e, "split": "val", "loss": 2.1 - 0.2 * e,
                     "top1_err": 0.8 - 0.1 * e, "top5_err": 0.4 - 0.05 * e, "lr": lr})
    return recs


def test_learning_curves_and_metrics_file(tmp_path):
    recs = _records()
    assert lr_changes(recs) == [(3, 0.001)]
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + '\n{"epoch": 6, "spl')  # torn tail
    assert read_metrics(path) == recs
    _check_png(learning_curves_figure(recs, tmp_path / "curves.png"))


def test_learning_curves_draw_val_error_and_mark_lr(tmp_path, monkeypatch):
    import alexnet.figures.curves as curves

    figs = []
    real = curves.save
    monkeypatch.setattr(curves, "save", lambda fig, p: figs.append(fig) or real(fig, p))
    learning_curves_figure(_records(), tmp_path / "c.png")
    err_ax, loss_ax = figs[0].axes[:2]
    labels = [line.get_label() for line in err_ax.lines]
    assert "val top1" in labels and "val top5" in labels
    val = next(line for line in err_ax.lines if line.get_label() == "val top1")
    assert list(val.get_xdata()) == [1, 2, 3, 4, 5, 6]
    assert list(val.get_ydata()) == pytest.approx([80, 70, 60, 50, 40, 30])
    assert {line.get_label() for line in loss_ax.lines} >= {"train loss", "val loss"}
    vlines = [line for line in err_ax.lines if list(line.get_xdata()) == [3.5, 3.5]]
    assert len(vlines) == 1  # the lr change before epoch 4
