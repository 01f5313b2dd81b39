"""End to end on the real data part: a run trained on a generated image folder, then eval
(centre, ten views, ensemble), predict, features + neighbors, report and export through the CLI."""

from __future__ import annotations

import json

import pytest

from alexnet.cli import main
from conftest import colour_class_tree


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from alexnet.train.loop import train
    from alexnet.train.run_config import resolve_config

    tmp = tmp_path_factory.mktemp("e2e")
    root = colour_class_tree(tmp / "images", per_class=10)
    cfg = resolve_config({"model": {"name": "paper", "image_size": 64},
                          "data": {"source": str(root), "crop": 64, "resize": 72},
                          "epochs": 2, "batch_size": 8, "quick": False, "device": "cpu",
                          "optim": {"lr": 0.001}})
    train(cfg, tmp / "run")
    return tmp


@pytest.mark.slow
def test_cli_end_to_end_on_an_image_folder(run, capsys):
    rd, root = run / "run", run / "images"
    ckpt = str(rd / "last.pt")
    assert main(["eval", ckpt, "--views", "ten", "--json", "--per-class"]) == 0
    ten = json.loads(capsys.readouterr().out)
    assert ten["views"] == "ten" and ten["images"] > 0 and len(ten["per_class"]) == 3
    assert main(["eval", ckpt, ckpt, "--data", str(root), "--views", "ten", "--json"]) == 0
    ens = json.loads(capsys.readouterr().out)
    assert ens["top1_err"] == ten["top1_err"] and ens["top5_err"] == ten["top5_err"]

    bad = run / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 broken")
    img = str(root / "class2" / "3.png")
    assert main(["predict", ckpt, img, str(bad), "--json", "--topk", "2"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out[0]["predictions"][0]["name"] in {"class0", "class1", "class2"}
    assert "error" in out[1]

    feats = run / "feats.pt"
    assert main(["features", ckpt, "--split", "train", "--out", str(feats)]) == 0
    capsys.readouterr()
    fig = run / "nn.png"
    assert main(["neighbors", str(feats), img, "--topk", "3", "--out", str(fig), "--json"]) == 0
    nn = json.loads(capsys.readouterr().out)
    assert len(nn["queries"][0]["neighbors"]) == 3 and fig.stat().st_size > 1000

    assert main(["report", str(rd)]) == 0
    out = capsys.readouterr().out
    assert "with center and ten views" in out and "| this run: best.pt evaluated on" in out
    html = (rd / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4

    assert main(["export", ckpt, "--format", "torchscript", "--out", str(run / "m.ts")]) == 0
    assert "outputs match" in capsys.readouterr().out
