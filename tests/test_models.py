"""The AlexNet family: parameter counts, shapes, towers, init, torchvision parity."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import alexnet
from alexnet.errors import AlexNetError
from alexnet.models import create_model, list_models
from alexnet.models.local_response_norm import LocalResponseNorm, SameMapResponseNorm, lrn_reference
from alexnet.models.profile import layer_table

# 1000 classes, 3 input channels.
PARAMS = {
    "paper": 60_965_224,  # docs/paper-facts.md: 60,965,224 with groups=2
    "original": 60_965_224,
    "one-tower": 62_378_344,
    "half": 59_798_312,
    "owt": 61_100_840,  # torchvision
    "d2l": 50_844_008,
}


def test_registry_lists_every_variant() -> None:
    assert list_models() == [*PARAMS, "cifar4"]  # cifar4: models/cifar4.py, not an AlexNet
    assert alexnet.list_models() == [*PARAMS, "cifar4"]


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_count(name: str) -> None:
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


def test_unknown_model_lists_valid_ones() -> None:
    with pytest.raises(AlexNetError, match="valid models: paper, original"):
        create_model("alexnet-xl")


def test_paper_layer_sizes() -> None:
    """§3.5: 55·55·96, 27·27·256, 13·13·384, 13·13·384, 13·13·256, 4096, 4096, 1000."""
    rows = {r.name: r.output_shape for r in layer_table(create_model("paper"))}
    assert rows["features.conv1"] == [96, 55, 55]
    assert rows["features.conv2"] == [256, 27, 27]
    assert rows["features.conv3"] == [384, 13, 13]
    assert rows["features.conv4"] == [384, 13, 13]
    assert rows["features.conv5"] == [256, 13, 13]
    assert rows["features.pool5"] == [256, 6, 6]
    assert rows["classifier.fc6"] == [4096]
    assert rows["classifier.fc7"] == [4096]
    assert rows["classifier.fc8"] == [1000]


def _grad_of_input_channels(layer: nn.Conv2d, x: torch.Tensor, out_channels: slice) -> torch.Tensor:
    """Per input channel, the gradient magnitude reaching it from the given output channels."""
    x = x.clone().requires_grad_(True)
    layer(x)[:, out_channels].sum().backward()
    return x.grad.abs().sum(dim=(0, 2, 3))


@pytest.mark.parametrize("layer_name,in_ch", [("conv2", 96), ("conv4", 384), ("conv5", 384)])
def test_towers_are_isolated_at_conv2_4_5(layer_name: str, in_ch: int) -> None:
    model = create_model("paper")
    layer = getattr(model.features, layer_name)
    out_half = layer.out_channels // 2
    x = torch.randn(1, in_ch, 13, 13)
    g = _grad_of_input_channels(layer, x, slice(0, out_half))  # tower 1's outputs
    assert g[: in_ch // 2].gt(0).all()  # see tower 1's maps
    assert g[in_ch // 2:].eq(0).all()  # never tower 2's
    g = _grad_of_input_channels(layer, x, slice(out_half, None))  # tower 2's outputs
    assert g[: in_ch // 2].eq(0).all() and g[in_ch // 2:].gt(0).all()


def test_conv3_and_fc6_see_both_towers() -> None:
    model = create_model("paper")
    g = _grad_of_input_channels(model.features.conv3, torch.randn(1, 256, 13, 13), slice(0, 1))
    assert g.gt(0).all()  # one conv3 kernel sees all 256 maps of both towers
    x = torch.randn(1, 256, 6, 6, requires_grad=True)
    model.classifier.fc6(torch.flatten(x, 1))[:, 0].sum().backward()
    per_channel = x.grad.abs().sum(dim=(0, 2, 3))
    assert per_channel[:128].gt(0).all() and per_channel[128:].gt(0).all()


def test_whole_network_tower_isolation() -> None:
    """Through conv1..conv2 of the whole network, tower 2's maps do not reach tower 1's."""
    model = create_model("paper", image_size=64).eval()
    feats = model.features
    x = torch.randn(1, 3, 64, 64)
    h1 = feats.relu1(feats.conv1(x)).detach().requires_grad_(True)  # (1, 96, 15, 15)
    out = feats.pool2(feats.lrn2(feats.relu2(feats.conv2(feats.pool1(feats.lrn1(h1))))))
    out[:, :128].sum().backward()  # tower 1's maps after conv2, its LRN and pooling
    assert h1.grad[:, 48:].abs().sum() == 0 and h1.grad[:, :48].abs().sum() > 0


def test_paper_init() -> None:
    """§5: weights N(0, 0.01²); biases 1 in conv2, conv4, conv5, fc6, fc7, 0 elsewhere."""
    torch.manual_seed(0)
    model = create_model("paper")
    layers = model._layers()
    for name, layer in layers.items():
        w = layer.weight.detach()
        assert abs(w.mean().item()) < 1e-3, name
        assert w.std().item() == pytest.approx(0.01, rel=0.05), name
        bias = 1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        assert torch.equal(layer.bias.detach(), torch.full_like(layer.bias, bias)), name


def test_lrn_stays_inside_each_tower() -> None:
    """Two towers: conv1's maps 0-47 are normalised among themselves (rnorm1a/rnorm1b), so no
    map of tower 2 changes a normalised map of tower 1; lrn_per_tower=false mixes them."""
    x = torch.randn(2, 96, 5, 5, requires_grad=True)
    for per_tower, leaks in ((True, False), (False, True)):
        model = create_model("paper", image_size=64, lrn_per_tower=per_tower)
        lrn = model.features.lrn1
        x.grad = None
        lrn(x)[:, :48].sum().backward()
        assert (x.grad[:, 48:].abs().sum() > 0) == leaks
        if per_tower:
            halves = [lrn_reference(h) for h in x.detach().split(48, dim=1)]
            torch.testing.assert_close(lrn(x.detach()), torch.cat(halves, 1))


def test_xavier_init() -> None:
    """init=xavier: U(±sqrt(6 / (fan_in + fan_out))) weights, zero biases, in every layer."""
    torch.manual_seed(0)
    model = create_model("paper", num_classes=10, in_channels=1, image_size=64, init="xavier")
    for name, layer in model._layers().items():
        w = layer.weight.detach()
        receptive = w[0, 0].numel() if w.dim() == 4 else 1
        fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert w.abs().max().item() <= bound + 1e-7, name
        assert w.std().item() == pytest.approx(bound / 3**0.5, rel=0.1), name
        assert torch.count_nonzero(layer.bias).item() == 0, name
    with pytest.raises(AlexNetError, match="xavier"):
        create_model("paper", init="he")


def test_original_init_and_multipliers() -> None:
    """Released code: std 0.03 on conv3-5; biases lr x2 and no weight decay."""
    torch.manual_seed(0)
    model = create_model("original")
    for name, layer in model._layers().items():
        std = 0.03 if name in ("conv3", "conv4", "conv5") else 0.01
        assert layer.weight.std().item() == pytest.approx(std, rel=0.05), name
    groups = model.optim_groups()
    assert {g["name"] for g in groups} == {n for n, _ in model.named_parameters()}
    for g in groups:
        bias = g["name"].endswith(".bias")
        assert (g["lr_mult"], g["wd_mult"]) == ((2.0, 0.0) if bias else (1.0, 1.0))
    assert all(g["lr_mult"] == 1.0 for g in create_model("paper").optim_groups())


def test_original_layer_order() -> None:
    """layers-145.cfg: conv1 -> norm -> pool -> ReLU; conv2 -> ReLU -> norm -> same-map norm."""
    names = [n for n, _ in create_model("original").features.named_children()]
    assert names[:9] == ["conv1", "lrn1", "pool1", "relu1", "conv2", "relu2", "lrn2", "rnorm2",
                         "pool2"]
    rnorm = create_model("original").features.rnorm2
    assert isinstance(rnorm, SameMapResponseNorm)
    # layer-params-145.cfg `cnorm2a`: scale=0.001, pow=0.75; the kernel's denominator is
    # 1 + scale/size²·Σ, so k = 1 (the cross-map norm's k = 2 comes from its minDiv=2).
    assert (rnorm.size, rnorm.alpha, rnorm.beta, rnorm.k) == (5, 1e-3, 0.75, 1.0)


def test_ablation_options() -> None:
    model = create_model("paper", lrn=False, activation="tanh", dropout=0.3, pool="non-overlap",
                         num_classes=10, in_channels=1)
    assert not any(isinstance(m, LocalResponseNorm) for m in model.modules())
    assert any(isinstance(m, nn.Tanh) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert model.classifier.drop6.p == 0.3
    rows = {r.name: r.output_shape for r in layer_table(model)}
    assert rows["features.pool1"] == [96, 27, 27]  # (55-2)//2+1
    assert rows["features.pool5"] == [256, 6, 6]  # 27 -> 13 -> 6 with 2/2 too
    assert model(torch.randn(2, 1, 224, 224)).shape == (2, 10)
    with pytest.raises(AlexNetError):
        create_model("paper", pool="avg")
    with pytest.raises(AlexNetError):
        create_model("paper", image_size=40)


@pytest.mark.parametrize("name", list(PARAMS))
def test_rebuild_from_config(name: str) -> None:
    model = create_model(name, num_classes=7, in_channels=1, image_size=96)
    again = create_model(**model.config)
    assert again.config == model.config
    assert {k: v.shape for k, v in again.state_dict().items()} == \
        {k: v.shape for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list(PARAMS))
def test_forward_backward_every_variant(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    x = torch.randn(2, 3, 224, 224)
    logits = model(x)
    assert logits.shape == (2, 10)
    nn.functional.cross_entropy(logits, torch.tensor([1, 2])).backward()
    assert torch.isfinite(logits).all()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    model.eval()
    with torch.no_grad():
        assert model.embed(x).shape == (2, 4096)
    assert model.conv1.weight.shape[2:] == (11, 11)


def test_embed_is_fc7_after_relu() -> None:
    model = create_model("paper", num_classes=10, image_size=64).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        e = model.embed(x)
        # before the dropout, which at test time scales by 0.5 (§4.2)
        assert torch.allclose(model.classifier.fc8(0.5 * e), model(x), atol=1e-5)
    assert (e >= 0).all()


def test_owt_matches_torchvision() -> None:
    import torchvision

    ours = create_model("owt").eval()
    ref = torchvision.models.alexnet(weights=None).eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in ref.state_dict().items()}
    ours.load_state_dict(ref.state_dict())  # strict: pretrained weights load unchanged
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-6)


# ---------------------------------------------------------------- §7: one conv layer removed

# remove_conv -> (parameters at 1000 classes, 224: the removed layer's gone, the next layer's
# input width changed), the next layer's (name, weight shape)
REMOVED = {
    2: (60_104_808, "features.conv3", (384, 96, 3, 3)),  # conv3 takes pool1's 96 maps
    3: (59_858_920, "features.conv4", (384, 128, 3, 3)),  # conv2's 256, still groups=2
    4: (60_301_288, "features.conv5", (256, 192, 3, 3)),  # conv3's 384, groups=2: as before
    5: (79_396_968, "classifier.fc6", (4096, 384 * 6 * 6)),  # conv4's 384 maps, pooled
}


@pytest.mark.parametrize("k", list(REMOVED))
def test_remove_conv_shapes_and_parameters(k: int) -> None:
    params, nxt, shape = REMOVED[k]
    model = create_model("paper", remove_conv=k)
    state = model.state_dict()
    assert sum(p.numel() for p in model.parameters()) == params
    assert tuple(state[f"{nxt}.weight"].shape) == shape
    assert f"features.conv{k}.weight" not in state and not hasattr(model.features, f"relu{k}")
    # every other layer keeps the full net's key and shape
    full = create_model("paper").state_dict()
    kept = {key for key in full if not key.startswith((f"features.conv{k}.", f"{nxt}."))}
    assert kept == set(state) - {f"{nxt}.weight", f"{nxt}.bias"}
    assert all(state[key].shape == full[key].shape for key in kept)
    rows = {r.name: r.output_shape for r in layer_table(model)}
    assert rows["features.pool5"] == [384 if k == 5 else 256, 6, 6]
    assert rows["features.pool2"] == [96 if k == 2 else 256, 13, 13]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert model(x).shape == (2, 1000) and model.embed(x).shape == (2, 4096)
        assert model.embed(x, "conv5").shape == (2, (384 if k == 5 else 256) * 13 * 13)
    assert model.config["remove_conv"] == k and create_model(**model.config).config == model.config


def test_remove_conv2_takes_its_norms_and_keeps_the_pooling() -> None:
    for name in ("paper", "original"):
        names = [n for n, _ in create_model(name, remove_conv=2).features.named_children()]
        assert "pool2" in names and not {"conv2", "relu2", "lrn2", "rnorm2"} & set(names), name


def test_remove_conv_keeps_the_towers_apart_until_they_meet() -> None:
    """conv3 gone: conv4 (groups=2) takes conv2's maps tower by tower, so tower 1's conv4
    kernels never see tower 2's 128 maps."""
    layer = create_model("paper", remove_conv=3).features.conv4
    g = _grad_of_input_channels(layer, torch.randn(1, 256, 13, 13), slice(0, 192))
    assert g[:128].gt(0).all() and g[128:].eq(0).all()


@pytest.mark.parametrize("k", [3, 5])
def test_remove_conv_two_towers_on_two_devices_equal_the_one_device_model(k: int) -> None:
    from alexnet.train.tower_devices import TwoTowerParallel

    model = create_model("paper", num_classes=5, image_size=64, dropout=0.0,
                         remove_conv=k).double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    torch.testing.assert_close(TwoTowerParallel(model, ["cpu", "cpu"])(x), model(x))


def test_remove_conv_init_follows_the_layer_names() -> None:
    """§5's biases of 1 stay with conv4 and conv5 whatever is removed."""
    model = create_model("paper", remove_conv=3)
    layers = model._layers()
    assert list(layers) == ["conv1", "conv2", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert layers["conv4"].bias.eq(1.0).all() and layers["conv2"].bias.eq(1.0).all()


def test_checkpoints_without_remove_conv_load_the_full_net() -> None:
    from alexnet.weights.checkpoint import load_model

    model = create_model("paper", num_classes=3, image_size=64)
    config = {k: v for k, v in model.config.items() if k != "remove_conv"}  # an older file
    loaded, _ = load_model({"format": "alexnet-checkpoint/1",
                            "model": {"config": config, "state_dict": model.state_dict()}})
    assert loaded.config["remove_conv"] is None and hasattr(loaded.features, "conv4")


@pytest.mark.parametrize("value", [1, 6, True, 3.0, "4"])
def test_remove_conv_refuses_other_values(value: object) -> None:
    from alexnet.recipes import load_recipe
    from alexnet.train.run_config import resolve_config, validate_config

    with pytest.raises(AlexNetError, match="remove_conv"):
        create_model("paper", remove_conv=value)
    cfg = resolve_config(load_recipe("paper"), {"data.source": "/nowhere", "device": "cpu",
                                                "model.remove_conv": value}, cuda=True)
    with pytest.raises(AlexNetError, match=r"model.remove_conv=.*expected null, 2, 3, 4 or 5"):
        validate_config(cfg)


def test_remove_conv_in_the_run_config_and_summary(capsys: pytest.CaptureFixture) -> None:
    from alexnet.cli import main
    from alexnet.recipes import load_recipe
    from alexnet.schema import parse_overrides
    from alexnet.train.run_config import check_model_options, resolve_config

    for text in ("4", "null"):
        cfg = resolve_config(load_recipe("paper"),
                             parse_overrides([f"model.remove_conv={text}"]), cuda=True)
        assert cfg.model.options["remove_conv"] == (4 if text == "4" else None)
        model = cfg.model.kwargs()
        assert check_model_options("paper", model) == []
    assert "has no option 'remove_conv'" in check_model_options("owt", {"remove_conv": 4})[0]
    assert main(["summary", "paper", "model.remove_conv=4"]) == 0
    out = capsys.readouterr().out
    assert "features.conv4" not in out and "total parameters 60,301,288" in out
