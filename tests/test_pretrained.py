"""Pretrained weights as checkpoints: a state dict in torchvision's AlexNet layout (random
weights written here stand in for the hub file) or the word `torchvision` (an empty or planted
torch hub cache, never the network) through `load_checkpoint`, then `eval --data`, `features`,
`neighbors`, `predict`, `report` and `export`; and `build_loaders(normalization=...)`."""

from __future__ import annotations

import json
from urllib.error import URLError

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import alexnet.weights.torchvision_weights as pretrained
from alexnet.cli import main
from alexnet.data import DataConfig, build_loaders, load_image
from alexnet.data.memory import registered
from alexnet.data.sources import class_names
from alexnet.errors import CheckpointError, ConfigError
from alexnet.evaluation.checkpoints_eval import evaluate_checkpoints
from alexnet.evaluation.feature_retrieval import find_neighbors
from alexnet.evaluation.features import load_features, make_features
from alexnet.evaluation.metrics import topk_error
from alexnet.evaluation.predict import predict_files, torchvision_classifier
from alexnet.weights.checkpoint import FORMAT, load_checkpoint, load_model
from conftest import EVAL_SIDE, eval_images, hand_views, sensitive, write_checkpoint

EXPECTED_LINE = ("torchvision AlexNet_Weights.IMAGENET1K_V1 reports 43.48% / 20.93% top-1/top-5 "
                 "error on ILSVRC-2012 val")


@pytest.fixture(scope="module")
def tv(tmp_path_factory):
    """torchvision's AlexNet with random (`sensitive`) weights, in eval mode, and its state
    dict saved with torch.save, as the hub file alexnet-owt-7be5be79.pth holds the trained
    ones."""
    import torchvision

    torch.manual_seed(0)
    model = sensitive(torchvision.models.alexnet())
    path = tmp_path_factory.mktemp("tv") / "alexnet-random.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache ($TORCH_HOME) and no network: every download attempt fails
    (and is recorded). Returns the cache's checkpoints folder and the attempted URLs."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    attempts: list[str] = []

    def offline(url, dst, *args, **kwargs):
        attempts.append(url)
        raise URLError("no network in the tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch-home" / "hub" / "checkpoints", attempts


@pytest.fixture
def cached(hub, tv):
    """The random weights planted in the empty hub cache as torchvision's file."""
    folder, attempts = hub
    folder.mkdir(parents=True)
    (folder / "alexnet-owt-7be5be79.pth").symlink_to(tv[1])
    return folder / "alexnet-owt-7be5be79.pth", attempts


@pytest.fixture(scope="module")
def imagenet_like():
    """6 RGB images (EVAL_SIDE²) registered with the 1000 ILSVRC-2012 classes, named as an
    ILSVRC-2012 folder's classes are (its wnid folders' names); labels set per test."""
    x, _ = eval_images(6)
    return x, class_names(pretrained.imagenet_wnids())


def _ilsvrc_hand_views(images: torch.Tensor) -> torch.Tensor:
    """torchvision's evaluation transform on square uint8 images, by hand: normalised with
    ImageNet's mean/std (0..255 units), upsampled to 256² (bilinear; no antialiasing when
    enlarging), the centre 224² ((256 - 224) / 2 = 16 on each side)."""
    norm = pretrained.imagenet_normalization()
    x = (images.float() - norm["mean"]) / norm["std"]
    x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
    return x[..., 16:240, 16:240]


# ---------------------------------------------------------------- the checkpoint it becomes


def test_a_torchvision_state_dict_loads_as_an_owt_checkpoint(tv):
    model, path = tv
    state = load_checkpoint(path)
    assert state["format"] == FORMAT
    assert state["model"]["config"] == {"name": "owt", "num_classes": 1000, "in_channels": 3,
                                        "dropout": 0.5, "image_size": 224}
    assert len(state["classes"]) == 1000 and state["classes"] == sorted(state["classes"])
    assert state["classes"][:2] == ["n01440764", "n01443537"]  # tench, goldfish
    norm = state["data"]["normalization"]
    assert norm["mean"].shape == norm["std"].shape == (3, 1, 1)
    assert torch.allclose(norm["mean"].flatten(), torch.tensor([123.675, 116.28, 103.53]))
    assert torch.allclose(norm["std"].flatten(), torch.tensor([58.395, 57.12, 57.375]))
    assert state["data"]["preprocess"] == {"resize": 256, "crop": 224, "channels": 3,
                                           "size": 224}
    assert state["config"]["data"] == {"source": None, "resize": 256, "crop": 224,
                                       "channels": 3, "flip": False, "mean": "channel"}
    assert state["config"]["model"] == state["model"]["config"]
    # random weights are not torchvision's file: no published errors attached to them
    assert state["pretrained"] == {"from": "a state dict in torchvision's AlexNet layout",
                                   "file": str(path)}
    ours, _ = load_model(state)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(ours(x), model(x))


def test_torchvisions_weights_are_read_through_its_public_api(monkeypatch):
    from torchvision.models import AlexNet_Weights

    w = AlexNet_Weights.IMAGENET1K_V1
    assert pretrained.torchvision_weights() is w
    assert pretrained.hub_file().name == w.url.rsplit("/", 1)[1]
    assert w.url.endswith(f"-{pretrained.hash_prefix(w.url)}.pth")
    acc = w.meta["_metrics"]["ImageNet-1K"]
    published = {"top1_err": 1 - acc["acc@1"] / 100, "top5_err": 1 - acc["acc@5"] / 100}
    assert pretrained.published_errors() == pytest.approx(published, abs=1e-9)
    t = w.transforms()
    assert pretrained.torchvision_preprocess() == {"resize": t.resize_size[0],
                                                   "crop": t.crop_size[0], "channels": 3,
                                                   "size": t.crop_size[0]}
    norm = pretrained.imagenet_normalization()
    assert torch.allclose(norm["mean"].flatten(), torch.tensor(t.mean) * 255)
    assert torch.allclose(norm["std"].flatten(), torch.tensor(t.std) * 255)
    names = class_names(pretrained.imagenet_wnids())
    assert names == w.meta["categories"] and names[0] == "tench"
    with pytest.raises(CheckpointError, match="names no hash prefix"):
        pretrained.hash_prefix("https://example.org/alexnet.pth")


def test_the_word_torchvision_reads_the_hub_cache_and_attaches_the_published_errors(
        cached, monkeypatch):
    file, attempts = cached
    monkeypatch.setattr(pretrained, "_sha256_prefix", lambda path: "7be5be79")  # the real file's
    state = load_checkpoint("torchvision")
    assert attempts == []  # nothing downloaded
    assert state["pretrained"] == {"from": "torchvision AlexNet_Weights.IMAGENET1K_V1",
                                   "file": str(file),
                                   "expected": {"top1_err": 0.43478, "top5_err": 0.20934}}


def test_torchvision_offline_and_not_cached_is_one_clear_error(hub, capsys, tmp_path):
    folder, attempts = hub
    with pytest.raises(CheckpointError, match="could not be downloaded.*copy the file to "
                                              f"{folder}/alexnet-owt-7be5be79.pth"):
        load_checkpoint("torchvision")
    assert attempts == [pretrained.torchvision_weights().url]
    img = tmp_path / "x.png"
    Image.new("RGB", (40, 30)).save(img)
    for argv in (["predict", "torchvision", str(img)],
                 ["predict", "owt", str(img), "--weights", "torchvision"],
                 ["eval", "torchvision", "--data", "fashion-mnist"],
                 ["export", "torchvision", "--format", "torchscript"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: torchvision's pretrained AlexNet weights") and \
            "Traceback" not in err and err.count("\n") == 1
    assert main(["predict", "paper", str(img), "--weights", "torchvision"]) == 2
    assert "owt" in capsys.readouterr().err


def test_a_state_dict_of_another_layout_is_one_checkpoint_error(tv, tmp_path, capsys):
    weights = torch.load(tv[1], weights_only=True)
    renamed = {k.replace("features.0.", "conv1."): v for k, v in weights.items()}
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(CheckpointError, match="not an alexnet checkpoint.*torchvision's AlexNet "
                                              "layout.*missing: features.0.weight, "
                                              "features.0.bias; unexpected: conv1.weight"):
        load_checkpoint(tmp_path / "renamed.pth")
    ten = {**weights, "classifier.6.weight": torch.zeros(10, 4096),
           "classifier.6.bias": torch.zeros(10)}
    torch.save(ten, tmp_path / "ten.pth")
    with pytest.raises(CheckpointError, match=r"shapes: classifier.6.weight is \(10, 4096\), "
                                              r"expected \(1000, 4096\)"):
        load_checkpoint(tmp_path / "ten.pth")
    assert main(["predict", str(tmp_path / "ten.pth"), "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


# ---------------------------------------------------------------- commands on --data


def test_commands_without_data_say_pretrained_weights_need_data(tv, capsys, tmp_path):
    path = str(tv[1])
    for argv in (["eval", path], ["features", path, "--out", str(tmp_path / "f.pt")],
                 ["report", path, "--out", str(tmp_path / "rep")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "came from pretrained weights" in err and "--data DIR" in err
        assert "1000 ILSVRC-2012 wnids" in err and "Traceback" not in err
    assert not (tmp_path / "rep").exists()  # refused before anything was written


def test_eval_on_data_uses_torchvisions_preprocessing(tv, imagenet_like, capsys):
    model, path = tv
    images, names = imagenet_like
    with torch.no_grad():
        logits = model(_ilsvrc_hand_views(images))  # (6, 1000)
    top2 = logits.topk(2, dim=1)
    assert (top2.values[:, 0] - top2.values[:, 1]).min() > 1e-4  # no near-ties
    # labels: the hand-made prediction for images 0-2, another class for 3-5 -> 50% top-1
    labels = top2.indices[:, 0].clone()
    labels[3:] = top2.indices[3:, 1]
    with registered("pretrained-eval", images, labels, images, labels, classes=names) as src:
        r = evaluate_checkpoints([str(path)], src, progress=False, device="cpu")
        assert r["images"] == 6 and r["top1_err"] == 0.5
        assert r["top5_err"] == topk_error(logits, labels)[5] == 0.0
        assert "expected" not in r  # random weights: nothing published
        assert main(["eval", str(path), "--data", src, "--views", "ten", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["images"] == 6


def test_eval_prints_the_published_errors_of_torchvisions_file(cached, imagenet_like,
                                                                monkeypatch, capsys):
    monkeypatch.setattr(pretrained, "_sha256_prefix", lambda path: "7be5be79")
    images, names = imagenet_like
    labels = torch.arange(6)
    with registered("pretrained-published", images, labels, images, labels,
                    classes=names) as src:
        assert main(["eval", "torchvision", "--data", src]) == 0
    out = capsys.readouterr().out
    assert f"  {EXPECTED_LINE} (centre views)" in out.splitlines()


def test_eval_refuses_data_with_other_classes(tv, imagenet_like, eval_data, capsys):
    images, names = imagenet_like
    assert main(["eval", str(tv[1]), "--data", eval_data(n=6)["source"]]) == 2
    err = capsys.readouterr().err
    assert "expected 3 classes" in err and "has 1000" in err and "ILSVRC-2012 wnids" in err
    shuffled = [names[1], names[0], *names[2:]]
    labels = torch.arange(6)
    with registered("pretrained-shuffled", images, labels, images, labels,
                    classes=shuffled) as src:
        assert main(["eval", str(tv[1]), "--data", src]) == 2
    err = capsys.readouterr().err
    assert "other classes than the checkpoint: its class 0 is 'goldfish'" in err


def test_features_at_every_layer_then_neighbors_and_predict(tv, imagenet_like, tmp_path,
                                                            capsys):
    model, path = tv
    images, names = imagenet_like
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    query = tmp_path / "q.png"
    Image.fromarray(images[4].permute(1, 2, 0).numpy()).save(query)  # lossless
    dims = {"conv5": 256 * 13 * 13, "pool5": 256 * 6 * 6, "fc6": 4096, "fc7": 4096}
    with registered("pretrained-features", images, labels, images, labels,
                    classes=names) as src:
        for layer, dim in dims.items():
            out = tmp_path / f"{layer}.pt"
            r = make_features(str(path), out, data=src, split="val", layer=layer,
                              progress=False, device="cpu")
            assert (r["images"], r["dim"], r["layer"]) == (6, dim, layer)
            stored = load_features(out)
            assert stored["meta"]["layer"] == layer
            assert torch.equal(stored["meta"]["normalization"]["mean"],
                               pretrained.imagenet_normalization()["mean"])
            nn = find_neighbors(out, [str(query)], k=2, progress=False, device="cpu")
            first = nn["queries"][0]["neighbors"]
            assert nn["layer"] == layer and first[0]["index"] == 4
            assert first[0]["distance"] < 1e-2 * max(first[1]["distance"], 1e-6)
        # fc6 by hand: torchvision's classifier up to fc6's ReLU on the hand-made views
        with torch.no_grad():
            want = model.classifier[:3](torch.flatten(model.avgpool(model.features(
                _ilsvrc_hand_views(images))), 1))
        got = load_features(tmp_path / "fc6.pt")["features"].float()
        assert torch.allclose(got, want, rtol=1e-2, atol=1e-2)  # stored as float16
        assert main(["features", str(path), "--data", src, "--layer", "pool5", "--split",
                     "val", "--out", str(tmp_path / "cli.pt")]) == 0
        assert "6 feature vectors of 9216 dimensions (pool5, val split)" in \
            capsys.readouterr().out

    assert main(["predict", str(path), str(query), "--json", "--topk", "3"]) == 0
    [r] = json.loads(capsys.readouterr().out)
    with torch.no_grad():
        want = torch.softmax(model(_ilsvrc_hand_views(images[4:5])), 1)[0].topk(3)
    assert [p["class"] for p in r["predictions"]] == want.indices.tolist()
    assert r["predictions"][0]["prob"] == pytest.approx(want.values[0].item(), rel=1e-4)
    assert [p["name"] for p in r["predictions"]] == [names[i] for i in want.indices.tolist()]


def test_predict_torchvision_and_its_weights_alias_answer_alike(cached, tmp_path, capsys):
    from torchvision.models import AlexNet_Weights

    img = tmp_path / "photo.png"
    Image.new("RGB", (300, 260), (200, 30, 40)).save(img)  # one colour: resizing cannot differ
    answers = []
    for argv in (["predict", "torchvision", str(img), "--json"],
                 ["predict", "owt", str(img), "--weights", "torchvision", "--json"],
                 ["predict", str(cached[0]), str(img), "--json"]):
        assert main(argv) == 0
        answers.append(json.loads(capsys.readouterr().out)[0]["predictions"])
    assert answers[0] == answers[1] == answers[2]
    [r] = predict_files(torchvision_classifier(device="cpu"), [str(img)])  # the Python API
    assert r["predictions"] == answers[0]
    assert cached[1] == []
    import torchvision

    model = torchvision.models.alexnet().eval()
    model.load_state_dict(torch.load(cached[0], weights_only=True))
    x = AlexNet_Weights.IMAGENET1K_V1.transforms()(load_image(str(img)))[None]
    with torch.no_grad():
        want = torch.softmax(model(x), 1)[0].topk(5)
    assert [p["class"] for p in answers[0]] == want.indices.tolist()
    assert answers[0][0]["prob"] == pytest.approx(want.values[0].item(), rel=1e-4)
    names = AlexNet_Weights.IMAGENET1K_V1.meta["categories"]
    assert [p["name"] for p in answers[0]] == [names[i] for i in want.indices.tolist()]


def test_report_and_export_of_pretrained_weights(tv, imagenet_like, tmp_path, monkeypatch,
                                                 capsys):
    monkeypatch.setattr(pretrained, "_sha256_prefix", lambda path: "7be5be79")
    images, names = imagenet_like
    labels = torch.arange(6)
    with registered("pretrained-report", images, labels, images, labels, classes=names) as src:
        assert main(["report", str(tv[1]), "--data", src, "--out", str(tmp_path / "rep"),
                     "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "with center and ten views" in out
    assert "torchvision AlexNet_Weights.IMAGENET1K_V1 as published" in out and "43.48" in out
    assert out.count("43.48") == 1  # the published row replaces REFERENCES' copy of it
    assert (tmp_path / "rep" / "report.html").is_file()
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(tv[1]), "--no-eval"]) == 0  # default ./<name>-report
    assert (tmp_path / "alexnet-random-report" / "report.md").is_file()
    capsys.readouterr()
    pytest.importorskip("safetensors")
    assert main(["export", str(tv[1]), "--format", "safetensors", "--out",
                 str(tmp_path / "tv.safetensors")]) == 0
    assert "outputs match" in capsys.readouterr().out


# ---------------------------------------------------------------- build_loaders(normalization)


def test_a_given_normalization_replaces_the_datas_statistics(eval_data, monkeypatch):
    data = eval_data(n=6)
    images, _ = eval_images(6)
    cfg = DataConfig.from_dict(data)
    own = build_loaders(cfg, batch_size=8, device="cpu", seed=0)
    given = {"mean": torch.tensor([10.0, 20.0, 30.0]).reshape(3, 1, 1),
             "std": torch.tensor([2.0, 4.0, 8.0]).reshape(3, 1, 1)}

    def no_statistics(*args, **kwargs):
        raise AssertionError("the data's statistics were computed but not needed")

    monkeypatch.setattr("alexnet.data.loaders._statistics", no_statistics)
    bundle = build_loaders(cfg, batch_size=8, device="cpu", seed=0, normalization=given)
    assert all(torch.equal(bundle.normalization[k], given[k]) for k in given)
    x, _ = next(iter(bundle.eval_loader("center")))
    assert torch.allclose(x, hand_views(images, given), atol=1e-5)
    assert not torch.equal(own.normalization["mean"], given["mean"])
    # the data's own normalisation given back: the same numbers as without it
    again = build_loaders(cfg, batch_size=8, device="cpu", seed=0,
                          normalization=own.normalization)
    assert torch.equal(next(iter(again.eval_loader("ten")))[0],
                       next(iter(own.eval_loader("ten")))[0])


def test_a_given_mean_image_is_resized_and_other_channels_are_refused(eval_data):
    data = eval_data(n=6)
    cfg = DataConfig.from_dict({**data, "mean": "pixel"})
    image = {"mean": torch.rand(3, 16, 16) * 255, "std": torch.ones(3, 1, 1)}
    bundle = build_loaders(cfg, batch_size=8, device="cpu", seed=0, normalization=image)
    assert bundle.normalization["mean"].shape == (3, EVAL_SIDE, EVAL_SIDE)
    grey = {"mean": torch.zeros(1, 1, 1), "std": torch.ones(1, 1, 1)}
    with pytest.raises(ConfigError, match="does not fit data.channels=3.*set data.channels to 1"):
        build_loaders(cfg, batch_size=8, device="cpu", seed=0, normalization=grey)


def test_eval_on_another_source_normalises_as_the_checkpoint_says(tmp_path, eval_data,
                                                                  monkeypatch):
    data, other = eval_data(n=12), eval_data(n=6, seed=8)
    ckpt = write_checkpoint(tmp_path / "m.pt", data)
    stored = load_checkpoint(ckpt)["data"]["normalization"]
    own_stats = build_loaders(DataConfig.from_dict({**data, "source": other["source"]}),
                              batch_size=8, device="cpu", seed=0).normalization
    assert not torch.allclose(own_stats["mean"], stored["mean"])  # the two differ
    import alexnet.evaluation.checkpoints_eval as checkpoints_eval

    seen = []
    real = checkpoints_eval.evaluate

    def spy(models, bundle, *args, **kwargs):
        seen.append(next(iter(bundle.eval_loader("center")))[0])
        return real(models, bundle, *args, **kwargs)

    monkeypatch.setattr(checkpoints_eval, "evaluate", spy)
    evaluate_checkpoints([str(ckpt)], other["source"], progress=False, device="cpu")
    assert torch.allclose(seen[0], hand_views(eval_images(6, seed=8)[0], stored), atol=1e-5)
