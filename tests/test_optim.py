"""§5's update rule: hand-computed steps, across an lr change, multipliers, state round trip."""

import pytest
import torch

from alexnet.errors import ConfigError
from alexnet.train.optim import OptimConfig, PaperSGD, build_optimizer


def _step(opt: PaperSGD, p: torch.Tensor, grad: float) -> None:
    p.grad = torch.full_like(p, grad)
    opt.step()


def test_hand_computed_steps_across_an_lr_change():
    w = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = PaperSGD([w], lr=0.1, momentum=0.9, weight_decay=0.01)
    _step(opt, w, 2.0)
    # v1 = -0.01·0.1·1 - 0.1·2 = -0.201;  w1 = 0.799
    assert w.item() == pytest.approx(0.799, abs=1e-12)
    opt.param_groups[0]["lr"] = 0.01
    _step(opt, w, 1.0)
    # v2 = 0.9·(-0.201) - 0.01·0.01·0.799 - 0.01·1 = -0.1909799;  w2 = 0.6080201
    assert w.item() == pytest.approx(0.6080201, abs=1e-12)


def test_differs_from_torch_sgd_only_when_lr_changes():
    def run(cls, lrs):
        w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
        opt = cls([w], lr=lrs[0], momentum=0.9, weight_decay=0.0)
        for lr, g in zip(lrs, (1.0, 0.5, -0.25), strict=True):
            opt.param_groups[0]["lr"] = lr
            w.grad = torch.full_like(w, g)
            opt.step()
        return w.detach()

    same = (0.01, 0.01, 0.01)
    assert torch.allclose(run(PaperSGD, same), run(torch.optim.SGD, same), atol=1e-15)
    drop = (0.1, 0.01, 0.01)
    assert not torch.allclose(run(PaperSGD, drop), run(torch.optim.SGD, drop), atol=1e-6)


def test_multipliers_and_frozen_groups():
    a = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    c = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = PaperSGD([{"params": [a]}, {"params": [b], "lr_mult": 2.0, "wd_mult": 0.0},
                    {"params": [c], "frozen": True}], lr=0.1, weight_decay=0.01)
    for p in (a, b, c):
        p.grad = torch.ones_like(p)
    opt.step()
    assert a.item() == pytest.approx(1 - 0.001 - 0.1)
    assert b.item() == pytest.approx(1 - 0.2)  # bias: ε·2, no decay (layer-params-145.cfg)
    assert c.item() == 1.0


def test_foreach_matches_a_per_tensor_loop_and_state_round_trips():
    torch.manual_seed(0)
    ps = [torch.randn(3, 4, requires_grad=True), torch.randn(5, requires_grad=True)]
    ref = [p.detach().clone() for p in ps]
    vel = [torch.zeros_like(p) for p in ref]
    opt = PaperSGD([{"params": [ps[0]]}, {"params": [ps[1]], "lr_mult": 2.0, "wd_mult": 0.0}],
                   lr=0.05, momentum=0.9, weight_decay=5e-4)
    for _ in range(3):
        grads = [torch.randn_like(p) for p in ref]
        for p, g in zip(ps, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        for i, (lr, wd) in enumerate(((0.05, 5e-4), (0.1, 0.0))):
            vel[i] = 0.9 * vel[i] - wd * lr * ref[i] - lr * grads[i]
            ref[i] = ref[i] + vel[i]
    for p, r in zip(ps, ref, strict=True):
        torch.testing.assert_close(p.detach(), r)
    clone = PaperSGD([{"params": [p]} for p in ps], lr=1.0)
    clone.load_state_dict(opt.state_dict())
    assert clone.param_groups[1]["lr_mult"] == 2.0
    torch.testing.assert_close(clone.state[ps[1]]["momentum_buffer"], vel[1])


def test_build_optimizer_uses_model_groups_and_rejects_unknown_names():
    from alexnet.models import create_model

    model = create_model("original", num_classes=3, image_size=64)
    opt = build_optimizer(model, OptimConfig(name="paper", lr=0.01, momentum=0.9,
                                             weight_decay=5e-4))
    bias = next(g for g in opt.param_groups if g["name"].endswith("conv1.conv.bias"))
    assert (bias["lr_mult"], bias["wd_mult"]) == (2.0, 0.0)
    with pytest.raises(ConfigError, match="paper, sgd"):
        build_optimizer(model, OptimConfig(name="adam", lr=0.01, momentum=0.9,
                                           weight_decay=5e-4))


def test_original_biases_keep_their_rate_when_the_schedule_lowers_the_weights():
    """layer-params-145.cfg: epsW fell from 0.01 to 0.00001 during the run, epsB stayed 0.02
    (only conv1's stopped, with conv1's freeze)."""
    from alexnet.models import create_model
    from alexnet.train.schedule import EpochEventSchedule, set_lr

    model = create_model("original", num_classes=3, image_size=64)
    opt = build_optimizer(model, OptimConfig(name="paper", lr=0.01, momentum=0.0,
                                             weight_decay=0.0))
    set_lr(opt, 0.001)  # the epoch-25 reduction
    w, b = model.classifier.fc8.weight, model.classifier.fc8.bias
    before_w, before_b = w.detach().clone(), b.detach().clone()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    assert torch.allclose(before_w - w.detach(), torch.full_like(w, 0.001))  # ε = 0.001
    assert torch.allclose(before_b - b.detach(), torch.full_like(b, 0.02))  # ε_B = 0.02

    events = EpochEventSchedule(0.01, [{"epoch": 1, "layers": {"conv1": {"frozen": True}}}])
    events.start_epoch(1, opt, None)
    conv1_bias = model.features.conv1.conv.bias
    frozen = conv1_bias.detach().clone()
    conv1_bias.grad = torch.ones_like(conv1_bias)
    opt.step()
    assert torch.equal(conv1_bias.detach(), frozen)  # conv1's bias stops with the freeze
