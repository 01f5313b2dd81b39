"""Plateau schedule (§5) and the released code's epoch events (layer-params-145.cfg)."""

from types import SimpleNamespace

import pytest
import torch

from alexnet.errors import ConfigError
from alexnet.recipes import load_recipe
from alexnet.train.optim import PaperSGD
from alexnet.train.run_config import resolve_config
from alexnet.train.schedule import (
    EpochEventSchedule,
    PlateauSchedule,
    ScheduleConfig,
    build_schedule,
)


def _opt(lr: float = 0.01) -> PaperSGD:
    groups = [{"name": n, "params": [torch.zeros(1, requires_grad=True)]}
              for n in ("features.conv1.conv.weight", "features.conv1.conv.bias",
                        "features.conv2.weight", "classifier.fc8.bias")]
    return PaperSGD(groups, lr=lr)


def test_plateau_divides_by_ten_after_patience_and_stops_after_three_reductions():
    opt, s = _opt(), PlateauSchedule(patience=2)
    errors = [0.9, 0.8, 0.8, 0.8,  # two epochs without improvement -> 0.001
              0.7, 0.75, 0.7,  # -> 0.0001 (0.7 is not better than 0.7)
              0.6, 0.6, 0.6,  # -> 0.00001
              0.5, 0.55, 0.5]  # plateau after the third reduction: stop
    stops = [s.end_epoch(e, err, opt) for e, err in enumerate(errors)]
    lrs = []
    opt2, s2 = _opt(), PlateauSchedule(patience=2)
    for e, err in enumerate(errors):
        s2.end_epoch(e, err, opt2)
        lrs.append(opt2.param_groups[0]["lr"])
    assert lrs[:4] == pytest.approx([0.01, 0.01, 0.01, 0.001])
    assert lrs[6] == pytest.approx(0.0001) and lrs[5] == pytest.approx(0.001)
    assert lrs[9] == pytest.approx(0.00001)
    assert s.reductions == 3
    assert stops == [False] * 12 + [True]
    assert all(g["lr"] == pytest.approx(0.00001) for g in opt.param_groups)


def test_plateau_state_round_trips():
    opt, s = _opt(), PlateauSchedule(patience=3)
    for e, err in enumerate([0.5, 0.6, 0.6]):
        s.end_epoch(e, err, opt)
    t = PlateauSchedule(patience=3)
    t.load_state_dict(s.state_dict())
    assert t.end_epoch(3, 0.6, opt) is False and t.reductions == 1
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001)


def test_original_recipe_epoch_events():
    cfg = resolve_config(load_recipe("original"), {"quick": False})
    s = build_schedule(cfg.schedule, cfg.optim.lr)
    assert isinstance(s, EpochEventSchedule)
    opt, data = _opt(), SimpleNamespace(lighting=True)

    def at(epoch: int) -> tuple[dict, dict, bool]:
        s.start_epoch(epoch, opt, data)
        g = {x["name"]: x for x in opt.param_groups}
        return g["features.conv1.conv.weight"], g["features.conv2.weight"], data.lighting

    conv1, conv2, light = at(24)
    assert (conv1["lr"], conv2["lr"], light) == (0.01, 0.01, True)
    assert at(25)[1]["lr"] == 0.001 and at(51)[1]["lr"] == 0.0001
    conv1, conv2, light = at(67)
    assert (conv1["lr"], conv2["lr"], light, conv1["frozen"]) == (0.00001, 0.0001, False, False)
    conv1, conv2, light = at(72)
    assert conv1["frozen"] and not conv2["frozen"] and not light
    conv1, conv2, _ = at(79)
    assert conv2["lr"] == 0.00001 and conv1["frozen"]
    # a resumed run at epoch 70 sees the same state as one that went through 0..70
    assert at(70)[0]["lr"] == 0.00001 and at(3)[0]["lr"] == 0.01 and at(3)[2]


def test_frozen_conv1_does_not_move():
    w = torch.ones(2, requires_grad=True)
    opt = PaperSGD([{"name": "features.conv1.conv.weight", "params": [w]}], lr=0.1)
    EpochEventSchedule(0.1, [{"epoch": 0, "layers": {"conv1": {"frozen": True}}}]).start_epoch(
        0, opt, None)
    w.grad = torch.ones_like(w)
    opt.step()
    assert torch.equal(w.detach(), torch.ones(2))


def test_bad_schedules_are_config_errors():
    with pytest.raises(ConfigError, match="plateau, events"):
        build_schedule(ScheduleConfig(name="cosine"), 0.01)
    with pytest.raises(ConfigError, match="epoch"):
        EpochEventSchedule(0.01, [{"lr": 0.1}])
