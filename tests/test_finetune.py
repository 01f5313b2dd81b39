"""Fine-tuning (`alexnet train --init-from`): the loaded weights, the new head, conv1 adapted to
the data's channels, frozen layers that stay as loaded, slower loaded layers, the record of
what a run started from, and the errors."""

from pathlib import Path

import pytest
import torch
import yaml

from alexnet.cli import main
from alexnet.errors import CheckpointError, ConfigError
from alexnet.models import create_model
from alexnet.train.finetune import adapt_conv1, freeze, paper_layers, transfer
from alexnet.weights.checkpoint import load_checkpoint
from alexnet.weights.torchvision_weights import imagenet_normalization
from conftest import register_separable


@pytest.fixture
def sources(request):
    """Two registered sources: 3 grey classes (the "pretraining" data) and 2 classes, grey or
    RGB (the data to fine-tune on)."""
    from alexnet.data.memory import unregister

    names = []

    def make(name: str, **options) -> dict:
        names.append(f"{request.node.name}-{name}")
        return register_separable(names[-1], **options)

    yield make
    for name in names:
        unregister(name)


def _recipe(tmp_path: Path, data: dict, **extra) -> str:
    recipe = {"recipe": "test", "model": {"name": "paper", "image_size": 64}, "epochs": 1,
              "batch_size": 8, "log_every": 2, "quick": False, "deterministic": True,
              "device": "cpu", "optim": {"lr": 0.01}, "data": data, **extra}
    path = tmp_path / f"recipe-{len(list(tmp_path.glob('recipe-*')))}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


@pytest.fixture
def pretrained(tmp_path, sources) -> Path:
    """A 3-class grey `paper` run at 64 px, one epoch."""
    run = tmp_path / "pre"
    assert main(["train", "--recipe", _recipe(tmp_path, sources("pre", classes=3)),
                 "--out", str(run)]) == 0
    return run


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "last.pt")["model"]["state_dict"]


def _layer(weights: dict, name: str) -> torch.Tensor:
    keys = {"conv1": "features.conv1.conv.weight", "fc8": "classifier.fc8.weight"}
    return weights[keys.get(name, f"{'features' if name.startswith('conv') else 'classifier'}"
                               f".{name}.weight")]


def test_frozen_layers_stay_as_loaded_the_others_learn_and_the_head_is_new(tmp_path, sources,
                                                                           pretrained):
    data = sources("new", classes=2)
    run = tmp_path / "tuned"
    assert main(["train", "--recipe", _recipe(tmp_path, data), "--init-from", str(pretrained),
                 "--out", str(run), "finetune.freeze=features"]) == 0
    before, after = _weights(pretrained), _weights(run)
    for conv in ("conv1", "conv2", "conv3", "conv4", "conv5"):
        assert torch.equal(_layer(before, conv), _layer(after, conv)), conv
    for fc in ("fc6", "fc7"):
        assert not torch.equal(_layer(before, fc), _layer(after, fc)), fc
    assert _layer(before, "fc8").shape == (3, 4096) and _layer(after, "fc8").shape == (2, 4096)
    record = yaml.safe_load((run / "config.yaml").read_text())["started_from"]
    assert record["init_from"] == str(pretrained) and record["replaced"] == ["fc8"]
    assert record["copied"] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    assert record["frozen"] == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert record["normalization"] == "the loaded model's"
    # the run normalises as the loaded model was trained, not with the new data's statistics
    saved = load_checkpoint(run / "last.pt")["data"]["normalization"]
    assert torch.equal(saved["mean"], load_checkpoint(pretrained / "last.pt")["data"]
                       ["normalization"]["mean"])


def test_lr_mult_zero_keeps_the_loaded_layers_and_the_run_resumes(tmp_path, sources, pretrained):
    data = sources("new", classes=2)
    run = tmp_path / "tuned"
    assert main(["train", "--recipe", _recipe(tmp_path, data), "--init-from", str(pretrained),
                 "--out", str(run), "finetune.lr_mult=0"]) == 0
    before, after = _weights(pretrained), _weights(run)
    assert all(torch.equal(_layer(before, n), _layer(after, n))
               for n in ("conv1", "conv3", "fc6", "fc7"))
    first = _layer(after, "fc8").clone()
    assert main(["train", "--resume", str(run), "epochs=2"]) == 0
    resumed = _weights(run)
    assert torch.equal(_layer(before, "fc7"), _layer(resumed, "fc7"))
    assert not torch.equal(first, _layer(resumed, "fc8"))


def test_conv1_adapts_from_grey_to_rgb_and_back():
    grey = torch.randn(96, 1, 11, 11)
    rgb = adapt_conv1(grey, 3)
    x = torch.rand(1, 3, 11, 11)
    # the RGB kernel answers (r, g, b) as the grey kernel answers their mean
    assert torch.allclose((rgb * x).sum(), (grey * x.mean(1, keepdim=True)).sum(), atol=1e-5)
    back = adapt_conv1(rgb, 1)
    assert torch.allclose(back, grey, atol=1e-6)
    with pytest.raises(CheckpointError, match="only 1 <-> 3"):
        adapt_conv1(torch.randn(96, 2, 11, 11), 3)


def test_a_grey_checkpoint_starts_an_rgb_run(tmp_path, sources, pretrained):
    data = sources("rgb", classes=2, channels=3)
    run = tmp_path / "rgb"
    assert main(["train", "--recipe", _recipe(tmp_path, data), "--init-from", str(pretrained),
                 "--out", str(run), "optim.lr=0.0001"]) == 0
    record = yaml.safe_load((run / "config.yaml").read_text())["started_from"]
    assert record["adapted"] == ["conv1"] and "data's own" in record["normalization"]
    assert _layer(_weights(run), "conv1").shape == (96, 3, 11, 11)


def test_transfer_names_every_layer_that_does_not_fit():
    source = create_model("paper", num_classes=5, image_size=64)
    state = {"model": {"config": source.config, "state_dict": source.state_dict()}}
    target = create_model("paper", num_classes=5, image_size=112)  # fc6 sees 1024 inputs
    with pytest.raises(CheckpointError, match=r"fc6: .*\(256,\).*|fc6: .* vs "):
        transfer(target, state)
    owt = create_model("owt", num_classes=5)
    with pytest.raises(CheckpointError, match="not in the checkpoint"):
        transfer(owt, state)


def test_the_paper_names_of_torchvision_layers():
    layers = paper_layers(create_model("owt"))
    assert list(layers) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert layers["conv2"].out_channels == 192 and layers["fc8"].out_features == 1000


def test_a_removed_conv_keeps_the_other_layers_paper_names():
    """§7's depth ablation: without conv3, conv4 is still conv4 (freeze conv1-3 then keeps
    conv1 and conv2 only)."""
    model = create_model("paper", num_classes=10, remove_conv=3)
    layers = paper_layers(model)
    assert list(layers) == ["conv1", "conv2", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert layers["conv4"] is model.features.conv4
    assert freeze(model, "conv1-3") == ["conv1", "conv2"]
    assert model.features.conv4.weight.requires_grad


def test_finetune_settings_without_init_from_and_init_from_with_resume_are_refused(
        tmp_path, sources, capsys):
    data = sources("new", classes=2)
    assert main(["train", "--recipe", _recipe(tmp_path, data), "--out", str(tmp_path / "x"),
                 "finetune.freeze=fc7"]) == 2
    assert "without init_from" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path), "--init-from", "torchvision"]) == 2
    assert "drop --init-from" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="one rate for every layer"):
        from alexnet.train.run_config import resolve_config, validate_config

        validate_config(resolve_config({"model": {"name": "paper"}, "data": data},
                                       {"init_from": "x", "finetune.lr_mult": 0.1,
                                        "optim.name": "sgd"}))


def test_torchvision_weights_start_a_run_on_three_classes(tmp_path, sources):
    torch.manual_seed(0)
    weights = tmp_path / "alexnet-owt.pth"
    torch.save(create_model("owt").state_dict(), weights)  # torchvision's key layout
    data = sources("rgb", classes=3, channels=3)
    run = tmp_path / "owt"
    assert main(["train", "--recipe", _recipe(tmp_path, data), "--init-from", str(weights),
                 "--out", str(run), "model.image_size=64", "finetune.freeze=fc7"]) == 0
    state = load_checkpoint(run / "last.pt")
    assert state["model"]["config"]["name"] == "owt"
    assert state["model"]["state_dict"]["classifier.6.weight"].shape == (3, 4096)
    loaded = torch.load(weights, weights_only=True)
    assert torch.equal(state["model"]["state_dict"]["classifier.4.weight"],
                       loaded["classifier.4.weight"])  # fc7, frozen
    record = state["config"]["started_from"]
    assert record["model"] == "owt" and record["replaced"] == ["fc8"]
    # torchvision's normalisation (ImageNet mean and std on 0..255 pixels), not the data's
    assert torch.allclose(state["data"]["normalization"]["std"].flatten(),
                          imagenet_normalization()["std"].flatten())
