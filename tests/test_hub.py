"""`torch.hub.load(<this repository>, ..., source="local")` through hubconf.py: an entry per
model, `weights` from a checkpoint or torchvision's (random weights planted in an empty torch hub
cache: nothing is downloaded); and `alexnet.create_model` / `alexnet.load` on torchvision's
weights."""

from __future__ import annotations

import ast
from pathlib import Path
from urllib.error import URLError

import pytest
import torch

import alexnet
from alexnet.errors import ConfigError
from alexnet.models import AlexNetBase
from alexnet.weights.checkpoint import load_model
from alexnet.weights.torchvision_weights import torchvision_weights
from conftest import EVAL_SIZE, sensitive, write_checkpoint

REPO = Path(__file__).resolve().parents[1]


def entry_name(model: str) -> str:
    """The hubconf entry of a model name: a Python identifier (`one-tower` -> `one_tower`)."""
    return model.replace("-", "_")


def hub_load(entry: str, **kwargs):
    return torch.hub.load(str(REPO), entry, source="local", trust_repo=True, verbose=False,
                          **kwargs)


@pytest.fixture(scope="module")
def torchvision_cache(tmp_path_factory):
    """A torch hub cache holding torchvision's AlexNet state dict with random weights under
    the name of torchvision's file, and the torchvision model with those weights."""
    import torchvision

    home = tmp_path_factory.mktemp("torch-home")
    url = torchvision_weights().url
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    model = sensitive(torchvision.models.alexnet())
    torch.save(model.state_dict(), folder / url.rsplit("/", 1)[1])
    return home, model


@pytest.fixture
def offline_hub(torchvision_cache, monkeypatch):
    """$TORCH_HOME is the planted cache; any download attempt fails the test."""
    home, model = torchvision_cache

    def no_download(url, *args, **kwargs):
        raise URLError(f"the tests do not download ({url})")

    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return model


def test_hubconf_has_an_entry_per_model_and_names_its_dependencies():
    tree = ast.parse((REPO / "hubconf.py").read_text(encoding="utf-8"))
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert {entry_name(m) for m in alexnet.list_models()} | {"alexnet"} <= functions
    [deps] = [n for n in tree.body if isinstance(n, ast.Assign)
              and n.targets[0].id == "dependencies"]
    assert {"torch", "torchvision"} <= set(ast.literal_eval(deps.value))


@pytest.mark.parametrize(("model", "size"), [("paper", EVAL_SIZE), ("one-tower", EVAL_SIZE),
                                           ("d2l", 96)])  # d2l needs 67 px or more
def test_each_entry_builds_its_model(model, size):
    net = hub_load(entry_name(model), num_classes=7, image_size=size)
    assert isinstance(net, AlexNetBase)
    assert (net.config["name"], net.num_classes, net.config["image_size"]) == (model, 7, size)


def test_alexnet_entry_with_a_checkpoints_weights(tmp_path):
    ckpt = write_checkpoint(tmp_path / "run" / "best.pt", name="half")
    want, _ = load_model(ckpt)
    for net in (hub_load("alexnet", weights=str(tmp_path / "run")),  # the weights' own model
                hub_load("half", weights=str(ckpt))):
        assert net.config == want.config
        assert all(torch.equal(v, want.state_dict()[k]) for k, v in net.state_dict().items())
    assert hub_load("alexnet", num_classes=3, image_size=EVAL_SIZE).config["name"] == "paper"
    with pytest.raises(Exception, match="holds a 'half' model, not 'paper'"):
        hub_load("paper", weights=str(ckpt))


def test_torchvision_weights_through_the_hub_and_the_api(offline_hub):
    tv = offline_hub
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        want = tv(x)
    for net in (hub_load("alexnet", weights="torchvision"),
                hub_load("owt", weights="torchvision"),
                alexnet.create_model("owt", weights="torchvision")):
        assert net.config["name"] == "owt"
        with torch.no_grad():
            assert torch.equal(net.eval()(x), want)
    ten = alexnet.create_model("owt", weights="torchvision", num_classes=10)
    assert ten.classifier[6].weight.shape == (10, 4096)
    assert torch.equal(ten.classifier[4].weight, tv.classifier[4].weight)  # fc7 kept
    with pytest.raises(ConfigError, match="model 'owt'"):
        hub_load("paper", weights="torchvision")
    model = alexnet.load("torchvision")
    assert model.classes[:2] == ["tench", "goldfish"] and len(model.classes) == 1000
    t = torchvision_weights().transforms()  # Resize(256) + CenterCrop(224)
    assert (model.transforms.preprocess["resize"], model.transforms.preprocess["crop"]) == \
        (t.resize_size[0], t.crop_size[0])
    photo = torch.full((3, 300, 260), 128, dtype=torch.uint8)
    assert len(model.predict(photo)) == 5
