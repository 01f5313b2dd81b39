"""The Python API: `alexnet.load` from every layout (checkpoint, run folder, Hugging Face folder,
safetensors export) -> a `Classifier` whose `predict` takes PIL images, paths and uint8 tensors
of any size; `save_pretrained` round trips; the commands open the portable layouts;
`alexnet.evaluate` is `alexnet eval`; `alexnet.create_model(weights=...)`; the Hub's
push/pull through a stand-in `huggingface_hub` (no network)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

import alexnet
from alexnet.cli import main
from alexnet.data.augment import fit_square
from alexnet.errors import AlexNetError, CheckpointError, ConfigError, DataError
from alexnet.evaluation.features import load_features
from alexnet.evaluation.predict import Classifier, Prediction
from alexnet.weights.checkpoint import load_checkpoint, load_model
from alexnet.weights.export import export_checkpoint
from conftest import EVAL_SIDE, EVAL_SIZE, eval_images, hand_views, write_checkpoint


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, eval_data):
    """One tiny trained-looking checkpoint (3 classes, 64 px, its data registered) in every
    layout `alexnet.load` takes: the file, its run folder, a save_pretrained folder and a
    safetensors export."""
    root = tmp_path_factory.mktemp("api")
    data = eval_data(n=12)
    ckpt = write_checkpoint(root / "run" / "best.pt", data)
    alexnet.load(ckpt).save_pretrained(root / "hf")
    export_checkpoint(ckpt, "safetensors", root / "m.safetensors")
    return {"file": ckpt, "run": root / "run", "hf": root / "hf",
            "export": root / "m.safetensors", "data": data}


def _png(path, index: int = 0):
    x, _ = eval_images(4)
    Image.fromarray(x[index].permute(1, 2, 0).numpy()).save(path)
    return path


def _alike(a: list[Prediction], b: list[Prediction]) -> bool:
    """The same classes in the same order with the same probabilities, up to float rounding
    (a batch of several images is computed in another order than one image alone)."""
    return ([(p.name, p.index) for p in a] == [(p.name, p.index) for p in b]
            and [p.prob for p in a] == pytest.approx([p.prob for p in b], rel=1e-5))


def test_every_layout_loads_the_same_model(layouts, tmp_path):
    want, _ = load_model(layouts["file"])
    x = torch.randn(2, 3, EVAL_SIZE, EVAL_SIZE)
    with torch.no_grad():
        logits = want(x)
    photo = Image.open(_png(tmp_path / "a.png"))
    answers = []
    for kind in ("file", "run", "hf", "export"):
        model = alexnet.load(layouts[kind])
        assert isinstance(model, Classifier) and not model.training, kind
        assert model.classes == ["class0", "class1", "class2"]
        assert model.config == want.config  # the network's attributes reach through
        assert list(model.state_dict()) == list(want.state_dict())  # the checkpoint's keys
        with torch.no_grad():
            assert torch.equal(model(x), logits), kind
        answers.append(model.predict(photo, topk=3))
    assert all(a == answers[0] for a in answers)


def test_predict_takes_pil_images_paths_and_uint8_tensors(layouts, tmp_path):
    model = alexnet.load(layouts["file"])
    images, _ = eval_images(4)
    path = _png(tmp_path / "b.png", 1)
    one = model.predict(images[1], topk=2)  # (C, H, W): one image -> one list
    assert len(one) == 2 and all(isinstance(p, Prediction) for p in one)
    assert one[0].prob >= one[1].prob and one[0].name == f"class{one[0].index}"
    assert model.predict(str(path), topk=2) == one  # PNG is lossless: the same pixels
    assert model.predict(Image.open(path), topk=2) == one
    many = model.predict([path, images[2]], topk=5)  # a list -> one list per image
    assert _alike(many[0][:2], one) and len(many[1]) == 3  # clipped to 3 classes
    batch = model.predict(images, topk=3)  # (B, C, H, W)
    assert len(batch) == 4 and _alike(batch[1], model.predict(images[1], topk=3))
    assert sum(p.prob for p in batch[0]) == pytest.approx(1.0, abs=1e-5)
    # the probabilities are the network's softmax on the checkpoint's own preprocessing
    stored = load_checkpoint(layouts["file"])["data"]["normalization"]
    with torch.no_grad():
        probs = torch.softmax(model(hand_views(images, stored)), 1)
    assert [p.prob for p in batch[3]] == pytest.approx(probs[3].sort(descending=True)
                                                       .values.tolist(), rel=1e-5)
    for bad in (images.float(), 3, [images[0], "no/such/file.png"]):
        with pytest.raises(DataError):
            model.predict(bad)


def test_a_64_px_model_answers_a_224_px_photo(layouts):
    model = alexnet.load(layouts["run"])
    g = torch.Generator().manual_seed(3)
    photo = torch.randint(0, 256, (3, 224, 300), generator=g, dtype=torch.uint8)
    x = model.transforms(photo)
    assert x.shape == (1, 3, EVAL_SIZE, EVAL_SIZE)
    # shorter side to the checkpoint's resize (72), normalised, the centre 64
    stored = load_checkpoint(layouts["file"])["data"]["normalization"]
    square = fit_square(photo[None].float(), EVAL_SIDE)
    assert torch.allclose(x, hand_views(square, stored), atol=1e-4)
    [top] = model.predict(Image.fromarray(photo.permute(1, 2, 0).numpy()), topk=1)
    with torch.no_grad():
        assert top.prob == pytest.approx(torch.softmax(model(x), 1).max().item(), rel=1e-5)
    ten = alexnet.load(layouts["run"], views="ten")
    assert ten.transforms(photo).shape == (1, 10, 3, EVAL_SIZE, EVAL_SIZE)
    assert len(ten.predict(photo, topk=3)) == 3


def test_save_pretrained_round_trips_bit_for_bit(layouts, tmp_path):
    model = alexnet.load(layouts["file"])
    folder = layouts["hf"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model_config"] == model.config
    assert config["classes"] == ["class0", "class1", "class2"]
    stored = load_checkpoint(layouts["file"])
    assert config["preprocess"] == stored["data"]["preprocess"]
    assert config["data"] == stored["config"]["data"]
    assert torch.tensor(config["normalization"]["mean"]).shape == (3, 1, 1)
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        assert f.metadata() == {"format": "pt"}  # Hugging Face's marker; the rest is config
        assert sorted(f.keys()) == sorted(model.state_dict())
    back = alexnet.load(folder)
    for k, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    for k in ("mean", "std"):
        assert torch.equal(back.transforms.normalization[k], model.transforms.normalization[k])
    images, _ = eval_images(3)
    with torch.no_grad():
        assert torch.equal(back(back.transforms(images)), model(model.transforms(images)))
    back.save_pretrained(tmp_path / "again")  # a loaded folder saves the same description
    assert (tmp_path / "again" / "config.json").read_text() == \
        (folder / "config.json").read_text()


def test_a_mean_image_travels_exactly(eval_data, tmp_path):
    ckpt = write_checkpoint(tmp_path / "m.pt", {**eval_data(n=6), "mean": "pixel"})
    model = alexnet.load(ckpt)
    assert model.transforms.mean.shape == (3, EVAL_SIDE, EVAL_SIDE)
    back = alexnet.load(model.save_pretrained(tmp_path / "hf"))
    assert torch.equal(back.transforms.mean, model.transforms.mean)
    lines = (tmp_path / "hf" / "config.json").read_text().splitlines()
    assert len(lines) < 60  # indented, each normalisation tensor on one line
    (tmp_path / "afile").write_text("")
    with pytest.raises(AlexNetError, match="a part of the path is a file"):
        model.save_pretrained(tmp_path / "afile")
    images, _ = eval_images(2)
    assert torch.equal(back.transforms(images), model.transforms(images))


def test_commands_open_an_export_and_a_pretrained_folder(layouts, tmp_path, capsys):
    img = _png(tmp_path / "c.png", 2)
    want = [{"rank": r + 1, "class": p.index, "name": p.name, "prob": p.prob}
            for r, p in enumerate(alexnet.load(layouts["file"]).predict(img))]
    for kind in ("export", "hf"):
        assert main(["predict", str(layouts[kind]), str(img), "--json", "--device", "cpu"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["predictions"] == want
    errors, features = [], []
    for kind in ("file", "export"):
        assert main(["eval", str(layouts[kind]), "--json", "--device", "cpu"]) == 0
        errors.append(json.loads(capsys.readouterr().out)["top1_err"])
    for kind in ("file", "hf"):
        out = tmp_path / f"{kind}.pt"
        assert main(["features", str(layouts[kind]), "--out", str(out), "--split", "val",
                     "--device", "cpu"]) == 0
        features.append(load_features(out)["features"])
    assert errors[0] == errors[1] and torch.equal(features[0], features[1])
    assert features[0].shape == (12, 4096)


def test_evaluate_is_what_alexnet_eval_prints(layouts, capsys):
    r = alexnet.evaluate(layouts["file"], views="center", device="cpu", progress=False)
    assert main(["eval", str(layouts["file"]), "--json", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out) == r
    assert r["images"] == 12 and r["views"] == "center" and 0 <= r["top1_err"] <= 1
    ten = alexnet.evaluate(layouts["run"], device="cpu", progress=False)  # §4.1 by default
    assert ten["views"] == "ten" and ten["images"] == 12
    # §6's ensemble of a checkpoint and its own save_pretrained copy: the one model's errors
    pair = alexnet.evaluate([layouts["file"], layouts["hf"]], views="center", device="cpu",
                            progress=False)
    assert (pair["top1_err"], pair["top5_err"]) == (r["top1_err"], r["top5_err"])
    assert [m["top1_err"] for m in pair["members"]] == [r["top1_err"]] * 2
    with pytest.raises(ConfigError, match="views"):
        alexnet.evaluate(layouts["file"], views="five")


def test_create_model_with_the_weights_of_a_checkpoint(layouts):
    want, _ = load_model(layouts["file"])
    same = alexnet.create_model("paper", weights=layouts["run"])
    assert same.config == want.config and same.training  # image_size 64 kept
    assert all(torch.equal(v, want.state_dict()[k]) for k, v in same.state_dict().items())
    assert alexnet.create_model(None, weights=layouts["hf"]).config == want.config
    five = alexnet.create_model("paper", weights=layouts["export"], num_classes=5,
                                dropout=0.3)
    assert five.num_classes == 5 and five.config["dropout"] == 0.3
    assert torch.equal(five.classifier.fc7.weight, want.classifier.fc7.weight)
    assert five.classifier.fc8.weight.shape == (5, 4096)  # a new head for the new classes
    grey = alexnet.create_model("paper", weights=layouts["file"], in_channels=1)
    assert torch.allclose(grey.conv1.weight, want.conv1.weight.sum(1, keepdim=True))
    with pytest.raises(CheckpointError, match="holds a 'paper' model, not 'half'"):
        alexnet.create_model("half", weights=layouts["file"])
    with pytest.raises(ConfigError, match="model 'owt'"):
        alexnet.create_model("paper", weights="torchvision")
    with pytest.raises(CheckpointError, match="fc6"):  # another input size: fc6 cannot fit
        alexnet.create_model("paper", weights=layouts["file"], image_size=96)
    fresh = alexnet.create_model("paper")  # no weights: models.create_model's defaults
    assert fresh.num_classes == 1000 and fresh.config["image_size"] == 224


def test_state_dict_keys_are_the_networks_also_when_nested(layouts):
    model = alexnet.load(layouts["file"])
    net = alexnet.create_model("paper", num_classes=3, image_size=EVAL_SIZE)
    net.load_state_dict(model.state_dict())
    model.load_state_dict(load_checkpoint(layouts["file"])["model"]["state_dict"])
    outer = torch.nn.Sequential(model)
    keys = list(outer.state_dict())
    assert keys[0] == "0.features.conv1.conv.weight" and not any(".net." in k for k in keys)
    with pytest.raises(AttributeError, match="'Classifier' object and its network"):
        model.no_such_attribute  # noqa: B018
    outer.load_state_dict(outer.state_dict())
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_state_dict({"features.conv1.conv.weight": net.conv1.weight})


def test_broken_portable_files_are_one_checkpoint_error(layouts, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="save_pretrained"):
        alexnet.load(tmp_path / "empty")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="does not say which model"):
        alexnet.load(plain)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(layouts["export"].read_bytes()[:4096])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        alexnet.load(cut)
    assert main(["predict", str(cut), str(plain)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


# ---------------------------------------------------------------- the Hub, stood in for


class FakeHub:
    """`huggingface_hub`'s HfApi and snapshot_download, recording calls: an upload copies the
    folder into `store`, a download returns it."""

    def __init__(self, store):
        self.store, self.calls = store, []

    def HfApi(self, token=None):  # noqa: N802 (huggingface_hub's name)
        hub = self

        class Api:
            def create_repo(self, repo_id, private=None, exist_ok=False):
                hub.calls.append(("create_repo", repo_id, private))
                return SimpleNamespace(repo_id=repo_id)

            def upload_folder(self, repo_id, folder_path, **kwargs):
                files = sorted(p.name for p in Path(folder_path).iterdir())
                hub.calls.append(("upload_folder", repo_id, files))
                shutil.copytree(folder_path, hub.store / repo_id)
                return SimpleNamespace(commit_url=f"https://hub/{repo_id}/commit/1")

        return Api()

    def snapshot_download(self, repo_id, **kwargs):
        self.calls.append(("snapshot_download", repo_id, kwargs["allow_patterns"]))
        return str(self.store / repo_id)


def test_push_to_hub_and_from_pretrained(layouts, tmp_path, monkeypatch):
    hub = FakeHub(tmp_path / "hub")
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    model = alexnet.load(layouts["file"])
    url = model.push_to_hub("me/alexnet-tiny", private=True)
    assert url == "https://hub/me/alexnet-tiny/commit/1"
    assert hub.calls[:2] == [("create_repo", "me/alexnet-tiny", True),
                             ("upload_folder", "me/alexnet-tiny",
                              ["config.json", "model.safetensors"])]
    back = Classifier.from_pretrained("me/alexnet-tiny")
    assert hub.calls[2] == ("snapshot_download", "me/alexnet-tiny",
                            ["config.json", "model.safetensors"])
    images, _ = eval_images(2)
    with torch.no_grad():
        assert torch.equal(back(back.transforms(images)), model(model.transforms(images)))
    assert Classifier.from_pretrained(layouts["hf"]).classes == model.classes  # a local folder


def test_without_huggingface_hub_push_to_hub_names_the_extra(layouts, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails
    model = alexnet.load(layouts["hf"])  # everything else works
    with pytest.raises(AlexNetError, match=r"push_to_hub needs .*pip install 'alexnet\[hub\]'"):
        model.push_to_hub("me/x")
    with pytest.raises(AlexNetError, match=r"alexnet\[hub\]"):
        Classifier.from_pretrained("me/not-a-folder")


def test_import_alexnet_stays_light():
    code = ("import sys, alexnet; heavy = [m for m in ('torch', 'torchvision', "
            "'huggingface_hub', 'safetensors') if m in sys.modules]; print(heavy); "
            "print(sorted(alexnet.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(Path(alexnet.__file__).parents[1])}
                         ).stdout.splitlines()
    assert out[0] == "[]"
    assert "'create_model', 'evaluate'" in out[1] and "'load'" in out[1]
    assert callable(alexnet.load) and "load" in dir(alexnet)
