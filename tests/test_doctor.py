"""The run doctor: one line, early, when a run diverges or stays at chance; the plateau schedule
stops a run that never left chance instead of spending its reductions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from alexnet.train.doctor import RunDoctor
from alexnet.train.loop import StopRequest, train_epoch
from alexnet.train.optim import PaperSGD
from alexnet.train.schedule import PlateauSchedule
from conftest import bare_run


def test_a_loss_far_above_ln_k_is_one_diverging_warning() -> None:
    doctor = RunDoctor(num_classes=10, lr=0.01)
    assert doctor.window(0, 1, 3.1) is None  # §5's init starts a little above ln 10
    message = doctor.window(0, 3, 12.2)  # what `paper` did before (docs/paper-facts.md)
    assert message is not None and "diverging" in message and "12.20" in message
    assert "optim.lr=0.001" in message and "\n" not in message
    assert doctor.window(0, 4, 21.0) is None  # said once


def test_an_epoch_at_ln_k_and_chance_error_is_stuck() -> None:
    doctor = RunDoctor(num_classes=10, lr=0.01)
    message = doctor.epoch(1, math.log(10) + 0.004, val_top1_err=0.90)
    assert message is not None and "stuck at chance" in message
    assert "same class" in message and "model.init=xavier" in message
    assert doctor.never_left_chance
    assert doctor.epoch(2, 2.35, val_top1_err=0.90) is not None  # above ln K: not learning
    assert doctor.epoch(3, 1.9, val_top1_err=0.70) is None
    assert not doctor.never_left_chance
    assert doctor.epoch(4, math.log(10), val_top1_err=0.90) is not None  # says it again


def test_plateau_at_chance_stops_instead_of_reducing() -> None:
    opt = PaperSGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    schedule = PlateauSchedule(patience=2)
    assert not schedule.end_epoch(0, 0.90, opt, at_chance=True)
    assert not schedule.end_epoch(1, 0.90, opt, at_chance=True)
    assert schedule.end_epoch(2, 0.90, opt, at_chance=True)  # would reduce: stops instead
    assert schedule.stop_reason == "chance" and schedule.reductions == 0
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)
    learning = PlateauSchedule(patience=2)
    for epoch, err in enumerate([0.5, 0.5, 0.5]):
        assert not learning.end_epoch(epoch, err, opt, at_chance=False)
    assert learning.reductions == 1 and opt.param_groups[0]["lr"] == pytest.approx(0.001)


def test_a_diverging_run_warns_in_the_loop(capsys: pytest.CaptureFixture) -> None:
    """A made-up diverging run: a linear model whose logits the huge rate blows up."""
    torch.manual_seed(0)
    model = nn.Linear(8, 10)
    opt = torch.optim.SGD(model.parameters(), lr=50.0)
    batches = [(torch.randn(16, 8) * 10, torch.randint(0, 10, (16,))) for _ in range(6)]
    doctor = RunDoctor(num_classes=10, lr=50.0)
    train_epoch(bare_run(model, opt, batches, log_every=1), 0, 0, StopRequest(), doctor)
    out = capsys.readouterr().out
    assert out.count("warning: diverging") == 1 and "ln(10) = 2.30" in out
