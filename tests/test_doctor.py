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


PAPER_INIT = {"name": "paper", "init": "paper", "init_bias": 1.0}


def test_an_epoch_at_ln_k_and_chance_error_is_stuck() -> None:
    doctor = RunDoctor(num_classes=10, lr=0.01, model=PAPER_INIT)
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


def test_no_stuck_verdict_before_enough_steps() -> None:
    """A run that sits at chance for its first epochs, then learns (90.0 -> 83.2 -> 80.4%)."""
    doctor = RunDoctor(num_classes=10, lr=0.01, model=PAPER_INIT)
    for epoch, (loss, err) in enumerate([(2.303, 0.900), (2.25, 0.832), (2.2, 0.804)]):
        assert doctor.epoch(epoch, loss, err, steps=50 * (epoch + 1), val_images=500) is None
    late = RunDoctor(num_classes=10, lr=0.01, model=PAPER_INIT)
    message = late.epoch(5, 2.303, 0.90, steps=600, val_images=500)
    assert message is not None and "after 600 steps" in message


def test_chance_is_judged_by_the_binomial_noise_of_the_validation_set() -> None:
    """2 points below chance is noise on 200 images (sd 2.1 points), learning on 10,000."""
    for images, stuck in ((200, True), (10_000, False)):
        doctor = RunDoctor(num_classes=10, lr=0.01, model=PAPER_INIT)
        said = doctor.epoch(3, math.log(10), 0.88, steps=1000, val_images=images)
        assert (said is not None) == stuck


@pytest.mark.parametrize("model, fine_tuned, advised, not_advised", [
    (PAPER_INIT, False, ["model.init=xavier", "model.init_bias=0.1"], []),
    ({"name": "paper", "init": "paper", "init_bias": 0.1}, False, ["model.init=xavier"],
     ["init_bias"]),
    ({"name": "paper", "init": "xavier", "init_bias": 1.0}, False, [], ["model.init"]),
    ({"name": "owt", "dropout": 0.5}, False, [], ["model.init"]),  # owt has no init option
    (PAPER_INIT, True, [], ["model.init"]),  # fine-tuned: the init is not used
])
def test_advice_is_never_what_the_run_already_does(model, fine_tuned, advised, not_advised):
    doctor = RunDoctor(num_classes=10, lr=0.01, model=model, fine_tuned=fine_tuned)
    message = doctor.epoch(4, math.log(10), 0.90, steps=1000, val_images=1000)
    assert message is not None and "optim.lr=0.001" in message
    assert all(a in message for a in advised)
    assert not any(n in message for n in not_advised)


def test_a_run_that_learns_gets_no_stuck_warning(capsys: pytest.CaptureFixture) -> None:
    """A made-up learnable task through the loop: two well separated classes."""
    torch.manual_seed(0)
    model = nn.Linear(8, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    centres = torch.randn(2, 8) * 3
    batches = []
    for _ in range(40):
        y = torch.randint(0, 2, (16,))
        batches.append((centres[y] + torch.randn(16, 8), y))
    doctor = RunDoctor(num_classes=2, lr=0.1, model={"name": "linear"})
    result = train_epoch(bare_run(model, opt, batches, log_every=5), 0, 0, StopRequest(), doctor)
    with torch.no_grad():
        x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
        err = float((model(x).argmax(1) != y).float().mean())
    assert doctor.epoch(0, result.loss, err, steps=40, val_images=len(y)) is None
    assert not doctor.never_left_chance
    assert "stuck" not in capsys.readouterr().out
