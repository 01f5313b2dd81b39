"""`alexnet predict`: JSON on a generated image, a bad file answered with an error line,
class names. (Pretrained weights: test_pretrained.py.)"""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.evaluation.checkpoints import display_names
from alexnet.evaluation.predict import load_classifier, predict_files
from conftest import eval_images, hand_views, write_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("p") / "m.pt")


def _png(path, index=0):
    x, _ = eval_images(4)
    Image.fromarray(x[index].permute(1, 2, 0).numpy()).save(path)
    return path


def test_predict_json_on_a_generated_image(ckpt, tmp_path, capsys):
    good = _png(tmp_path / "photo.png")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    code = main(["predict", str(ckpt), str(good), str(bad), str(good), "--topk", "2", "--json"])
    assert code == 1  # one file failed
    out = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in out] == [str(good), str(bad), str(good)]
    assert "error" in out[1] and "broken.jpg" in out[1]["error"]
    preds = out[0]["predictions"]
    assert [p["rank"] for p in preds] == [1, 2]
    assert preds[0]["prob"] >= preds[1]["prob"] > 0
    assert preds[0]["name"] == f"class{preds[0]['class']}"
    assert out[2] == out[0]
    # the probabilities are the model's softmax on the image preprocessed as the checkpoint
    # says: normalised with its stored mean and std, centre-cropped (made by hand here)
    state = torch.load(ckpt, weights_only=True)
    x = hand_views(eval_images(4)[0][:1], state["data"]["normalization"])
    with torch.no_grad():
        p = torch.softmax(load_classifier(str(ckpt), device="cpu")(x), 1)[0]
    assert preds[0]["prob"] == pytest.approx(p.max().item(), rel=1e-5)


def test_ten_views_and_all_classes_sum_to_one(ckpt, tmp_path):
    img = _png(tmp_path / "a.png", 1)
    predictor = load_classifier(str(ckpt), views="ten")
    [r] = predict_files(predictor, [str(img)], topk=10)
    assert len(r["predictions"]) == 3  # capped at the class count
    assert sum(p["prob"] for p in r["predictions"]) == pytest.approx(1.0, abs=1e-5)


def test_display_names():
    wnids = [f"n{i:08d}" for i in range(1000)]
    names = display_names({"classes": wnids}, 1000)
    assert names[0] == "tench" and names[999] == "toilet tissue"
    assert display_names({"classes": ["cat", "dog"]}, 2) == ["cat", "dog"]
    assert display_names(None, 3) == ["0", "1", "2"]


def test_an_output_path_under_a_file_is_one_error_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    ckpt = write_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "afile" / "m.onnx"
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and "afile" in err and "Traceback" not in err
    assert "a part of the path is a file" in err
