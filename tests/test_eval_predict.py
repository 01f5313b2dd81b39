"""`alexnet predict`: JSON on a generated image, a bad file answered with an error line,
class names, torchvision weights when offline."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from alexnet.cli import main
from alexnet.errors import CheckpointError
from alexnet.evaluation.checkpoints import display_names
from alexnet.evaluation.predict import checkpoint_predictor, predict_files
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
        p = torch.softmax(checkpoint_predictor(str(ckpt), device="cpu").model(x), 1)[0]
    assert preds[0]["prob"] == pytest.approx(p.max().item(), rel=1e-5)


def test_ten_views_and_all_classes_sum_to_one(ckpt, tmp_path):
    img = _png(tmp_path / "a.png", 1)
    predictor = checkpoint_predictor(str(ckpt), views="ten")
    [r] = predict_files(predictor, [str(img)], topk=10)
    assert len(r["predictions"]) == 3  # capped at the class count
    assert sum(p["prob"] for p in r["predictions"]) == pytest.approx(1.0, abs=1e-5)


def test_display_names():
    wnids = [f"n{i:08d}" for i in range(1000)]
    names = display_names({"classes": wnids}, 1000)
    assert names[0] == "tench" and names[999] == "toilet tissue"
    assert display_names({"classes": ["cat", "dog"]}, 2) == ["cat", "dog"]
    assert display_names(None, 3) == ["0", "1", "2"]


def test_torchvision_weights_offline_is_a_clear_error(monkeypatch, capsys):
    from urllib.error import URLError

    from torchvision.models import AlexNet_Weights

    def offline(self, *args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(type(AlexNet_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    from alexnet.evaluation.predict import torchvision_predictor

    with pytest.raises(CheckpointError, match="could not be downloaded"):
        torchvision_predictor(device="cpu")
    assert main(["predict", "paper", "x.png", "--weights", "torchvision"]) == 2
    assert "owt" in capsys.readouterr().err


def test_torchvision_weights_from_the_cache_answer_with_ilsvrc_names(monkeypatch, tmp_path):
    import torchvision
    from PIL import Image
    from torchvision.models import AlexNet_Weights

    torch.manual_seed(0)
    reference = torchvision.models.alexnet().eval()  # stands in for the cached download
    monkeypatch.setattr(type(AlexNet_Weights.IMAGENET1K_V1), "get_state_dict",
                        lambda self, *a, **k: reference.state_dict())
    from alexnet.evaluation.predict import predict_files, torchvision_predictor

    img = tmp_path / "photo.png"
    Image.new("RGB", (300, 260), (200, 30, 40)).save(img)
    [r] = predict_files(torchvision_predictor(device="cpu"), [str(img)], topk=3)
    x = AlexNet_Weights.IMAGENET1K_V1.transforms()(
        torchvision.io.read_image(str(img)))[None]
    want = torch.softmax(reference(x), 1)[0].topk(3)
    assert [p["class"] for p in r["predictions"]] == want.indices.tolist()
    assert r["predictions"][0]["prob"] == pytest.approx(want.values[0].item(), rel=1e-4)
    names = AlexNet_Weights.IMAGENET1K_V1.meta["categories"]
    assert [p["name"] for p in r["predictions"]] == [names[i] for i in want.indices.tolist()]


def test_an_output_path_under_a_file_is_one_error_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    ckpt = write_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "afile" / "m.onnx"
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and "afile" in err and "Traceback" not in err
    assert "a part of the path is a file" in err
