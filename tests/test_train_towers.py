"""§3.2's two-tower model parallelism equals the one-device model (outputs and gradients)."""

import pytest
import torch

from alexnet.errors import ConfigError
from alexnet.models import create_model
from alexnet.train.optim import OptimConfig, build_optimizer
from alexnet.train.tower_devices import TwoTowerParallel


@pytest.mark.parametrize("name,per_tower", [("paper", True), ("original", True),
                                            ("paper", False)])
def test_two_towers_on_two_cpu_devices_equal_the_one_device_model(name, per_tower):
    model = create_model(name, num_classes=5, image_size=64, dropout=0.0,
                         lrn_per_tower=per_tower).double()
    towers = TwoTowerParallel(model, ["cpu", "cpu"])
    x = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    y = torch.tensor([0, 3, 4])
    ref, out = model(x), towers(x)
    torch.testing.assert_close(out, ref)
    torch.nn.functional.cross_entropy(ref, y).backward()
    torch.nn.functional.cross_entropy(out, y).backward()
    for key, p in model.named_parameters():
        g0 = towers.tower[0][key.replace(".", "/")].grad
        g1 = towers.tower[1][key.replace(".", "/")].grad
        torch.testing.assert_close(torch.cat([g0, g1]), p.grad, msg=key)
        assert g0.shape[0] == p.shape[0] - p.shape[0] // 2
    state = towers.state_dict()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_tower_groups_keep_the_multipliers_and_a_step_matches():
    model = create_model("original", num_classes=4, image_size=64, dropout=0.0).double()
    towers = TwoTowerParallel(model, ["cpu", "cpu"])
    cfg = OptimConfig(name="paper", lr=0.01, momentum=0.9, weight_decay=5e-4)
    opt_a, opt_b = build_optimizer(model, cfg), build_optimizer(towers, cfg)
    assert sum(g["lr_mult"] == 2.0 for g in opt_b.param_groups) == 2 * 8  # 8 biases × 2 towers
    x, y = torch.randn(2, 3, 64, 64, dtype=torch.float64), torch.tensor([1, 2])
    for m, opt in ((model, opt_a), (towers, opt_b)):
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(towers.state_dict()[k], v)


def test_one_tower_models_are_refused():
    with pytest.raises(ConfigError, match="two-tower"):
        TwoTowerParallel(create_model("one-tower", num_classes=3, image_size=64), ["cpu", "cpu"])


def test_the_loop_trains_with_towers_and_saves_one_device_checkpoints(tmp_path,
                                                                      separable_data):
    from alexnet.train.loop import train
    from alexnet.train.run_config import resolve_config
    from alexnet.weights.checkpoint import load_model

    cfg = resolve_config({"model": {"name": "paper", "image_size": 64}, "epochs": 1,
                          "train_batches": 2, "batch_size": 8, "quick": False, "device": "cpu",
                          "towers": True, "tower_devices": ["cpu", "cpu"],
                          "optim": {"lr": 0.001},
                          "data": separable_data(n=32, size=64, channels=3)})
    summary = train(cfg, tmp_path)
    assert summary["epochs_done"] == 1
    model, state = load_model(tmp_path / "last.pt")
    assert state["config"]["towers"] is True and model.config["name"] == "paper"
