"""Every figure is written as a PNG with something drawn in it, and draws the data it is given:
Fig. 3 kernels (one block per tower, each kernel min-max scaled at its grid position), Fig. 4
left (the probabilities as bars) and right (queries and neighbours), learning curves with lr
changes, confusion matrix (row-normalised rates and the counts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import alexnet.figures.confusion as confusion_module
import alexnet.figures.conv1_kernels as kernels_module
import alexnet.figures.neighbors as neighbors_module
import alexnet.figures.predictions as predictions_module
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
    """The PNG's size; it must hold a drawing (many colours, not one blank canvas)."""
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.width >= min_size[0] and im.height >= min_size[1]
        pixels = np.asarray(im.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    return im.size


def _drawn(monkeypatch, module):
    """The matplotlib Figures `module` saves, in order."""
    figs = []
    real = module.save
    monkeypatch.setattr(module, "save", lambda fig, p: figs.append(fig) or real(fig, p))
    return figs


def _scaled(kernel: torch.Tensor) -> np.ndarray:
    """A (C, kh, kw) kernel min-max scaled to [0, 1], as (kh, kw, 3)."""
    k = (kernel - kernel.min()) / (kernel.max() - kernel.min())
    return k.expand(3, -1, -1).permute(1, 2, 0).numpy()


def test_conv1_kernels_sit_at_their_grid_positions(tmp_path, monkeypatch):
    figs = _drawn(monkeypatch, kernels_module)
    w = torch.randn(96, 3, 11, 11)
    conv1_kernels_figure(w, tmp_path / "k.png", towers=2, columns=16)
    tiles = [ax.images[0].get_array() for ax in figs[0].axes]  # one grid per tower
    assert len(tiles) == 2 and tiles[0].shape == (1 + 3 * 12, 1 + 16 * 12, 3)

    def at(grid, row, col):  # make_grid: 1 pixel of padding around each 11x11 kernel
        return np.asarray(grid[1 + 12 * row:12 + 12 * row, 1 + 12 * col:12 + 12 * col])

    for tower, index, row, col in ((0, 0, 0, 0), (0, 17, 1, 1), (0, 47, 2, 15), (1, 48, 0, 0),
                                   (1, 95, 2, 15)):
        assert np.allclose(at(tiles[tower], row, col), _scaled(w[index]), atol=1e-5)
    assert np.allclose(tiles[0][0], 1.0)  # the padding is white


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
    import alexnet.figures.conv1_kernels as kernels

    real = kernels.make_grid
    monkeypatch.setattr(kernels, "make_grid", lambda t, **kw: seen.append(t) or real(t, **kw))
    w = torch.randn(96, 3, 11, 11)
    conv1_kernels_figure(w, tmp_path / "k.png", towers=2)
    assert len(seen) == 2 and torch.equal(seen[0], w[:48]) and torch.equal(seen[1], w[48:])


def test_predictions_and_neighbors_figures(tmp_path, monkeypatch):
    drawn_pred = _drawn(monkeypatch, predictions_module)
    drawn_nn = _drawn(monkeypatch, neighbors_module)
    images = [torch.randint(0, 255, (3, 40, 50), dtype=torch.uint8) for _ in range(5)]
    probs = torch.softmax(torch.randn(5, 5), 1).sort(1, descending=True).values
    names = [[f"class {j}" for j in range(5)] for _ in range(5)]
    _check_png(predictions_figure(images, probs, names, tmp_path / "pred.png",
                                  true_names=["class 0", None, "class 3", "x", "class 4"]))
    axes = drawn_pred[0].axes  # image, bars, image, bars, ...
    assert np.allclose(axes[0].images[0].get_array(), images[0].permute(1, 2, 0) / 255)
    bars = axes[5].patches  # the third image's five bars, most probable at the top
    assert [b.get_width() for b in bars] == pytest.approx(probs[2].tolist())
    ticks = dict(zip(axes[5].get_yticks(), (t.get_text() for t in axes[5].get_yticklabels()),
                     strict=True))
    assert [ticks[b.get_y() + b.get_height() / 2] for b in bars] == names[2]  # top: rank 1
    assert [b.get_y() for b in bars] == sorted((b.get_y() for b in bars), reverse=True)
    red = [b.get_facecolor() for b in bars].index((0.8392156862745098, 0.15294117647058825,
                                                   0.1568627450980392, 1.0))
    assert red == 3  # "class 3", the true label, is the one red bar
    neigh = torch.rand(2, 6, 3, 32, 32)
    dist = torch.rand(2, 6)
    _check_png(neighbors_figure(images[:2], neigh, tmp_path / "nn.png", distances=dist,
                                labels=[["a"] * 6, ["b"] * 6]))
    grid = drawn_nn[0].axes  # row i: the query, then its neighbours
    assert np.allclose(grid[7].images[0].get_array(), images[1].permute(1, 2, 0) / 255)
    assert np.allclose(grid[7 + 4].images[0].get_array(), neigh[1, 3].permute(1, 2, 0))
    assert grid[7 + 4].get_title() == f"b\nd={float(dist[1, 3]):.3g}"


def test_confusion_figure(tmp_path, monkeypatch):
    figs = _drawn(monkeypatch, confusion_module)
    cm = torch.tensor([[5, 1, 0], [2, 3, 1], [0, 0, 6]])
    _check_png(confusion_figure(cm, ["cat", "dog", "bird"], tmp_path / "cm.png"))
    ax = figs[0].axes[0]
    rates = (cm / cm.sum(1, keepdim=True)).numpy()
    assert np.allclose(ax.images[0].get_array(), rates)  # rows: the true class, summing to 1
    counts = {(int(t.get_position()[1]), int(t.get_position()[0])): t.get_text()
              for t in ax.texts}
    assert counts == {(i, j): str(int(cm[i, j])) for i in range(3) for j in range(3)
                      if cm[i, j] > 0}
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "bird"]
    _check_png(confusion_figure(torch.randint(0, 9, (40, 40)), [str(i) for i in range(40)],
                                tmp_path / "cm40.png"))
    assert len(figs[1].axes[0].texts) == 0  # 40 classes: no numbers written


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
