"""`alexnet.accel.linear_grad`: under CPU bf16 autocast with a small batch the weight and bias
gradients are fp32 products with the values autocast's own path gives, and everything else keeps
`torch.nn.Linear`'s path."""

import pytest
import torch
from torch import nn

from alexnet.accel.linear_grad import SMALL_BATCH, fp32_weight_grad
from alexnet.accel.linear_grad import Fp32GradLinear as Linear
from conftest import bf16_grads_eager_and_compiled


def _run(layer: nn.Module, x: torch.Tensor, amp: bool = True) -> tuple:
    layer.zero_grad()
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        out = layer(x)
    (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out, x.grad, layer.weight.grad, layer.bias.grad


def test_fp32_weight_grad_is_the_product_in_fp32():
    torch.manual_seed(0)
    g, x = torch.randn(8, 5).bfloat16(), torch.randn(8, 7).bfloat16()
    got = fp32_weight_grad(g, x)
    assert got.dtype == torch.float32 and got.shape == (5, 7)
    torch.testing.assert_close(got, g.double().t().mm(x.double()).float())


def test_small_bf16_batches_take_the_fp32_gradient_path_with_autocasts_values():
    torch.manual_seed(0)
    ours, ref = Linear(64, 48), nn.Linear(64, 48)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(SMALL_BATCH, 64)
    got, want = _run(ours, x), _run(ref, x)
    assert "_Fp32WeightGradLinear" in type(got[0].grad_fn).__name__
    assert "_Fp32WeightGradLinear" not in type(want[0].grad_fn).__name__
    for a, b in zip(got, want, strict=True):  # output (bf16), dx, dw and db (fp32)
        assert a.dtype == b.dtype
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2)
    exact = _run(ref, x, amp=False)  # no bf16 rounding of the product: closer to fp32's
    assert (got[2] - exact[2]).abs().max() < 0.8 * (want[2] - exact[2]).abs().max()


@pytest.mark.parametrize(("rows", "amp", "grad"), [
    (SMALL_BATCH + 1, True, True),  # larger batches: the bf16 product and its cast are faster
    (8, False, True),  # fp32
    (8, True, False),  # inference
])
def test_everything_else_keeps_the_ordinary_linear(rows, amp, grad):
    layer = Linear(16, 8)
    x = torch.randn(rows, 16)
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16,
                                                      enabled=amp):
        out = layer(x)
        torch.testing.assert_close(out, nn.Linear.forward(layer, x))
    assert out.grad_fn is None or "_Fp32WeightGradLinear" not in type(out.grad_fn).__name__


def test_compiled_gradients_equal_eager_ones():
    torch.manual_seed(0)
    net = nn.Sequential(Linear(32, 64), nn.ReLU(), Linear(64, 10))
    x = torch.randn(16, 32)
    eager, compiled = bf16_grads_eager_and_compiled(net, x)
    for a, b in zip(compiled, eager, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)


def test_bf16_weights_are_used_only_while_attached_and_follow_other_changes():
    from alexnet.accel.linear_grad import Bf16Weights

    torch.manual_seed(0)
    net = nn.Sequential(Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))  # the plain one: no copy
    copies = Bf16Weights(net)
    assert [c.dtype for _, c in copies.pairs()] == [torch.bfloat16]
    copies.attach()
    assert net[0].weight_bf16 is copies.copies[0]
    copies.detach()
    assert net[0].weight_bf16 is None
    with torch.no_grad():
        net[0].weight.add_(1.0)  # changed other than by an update that wrote the copy
    copies.attach()
    torch.testing.assert_close(net[0].weight_bf16, net[0].weight.detach().bfloat16(),
                               rtol=0, atol=0)
    copies.detach()


def test_the_forward_uses_the_attached_copy():
    layer = Linear(8, 4)
    x = torch.randn(4, 8)
    layer.weight_bf16 = torch.zeros(4, 8, dtype=torch.bfloat16)  # a stand-in, not the weight
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    torch.testing.assert_close(out.float(), layer.bias.detach().bfloat16().float().expand(4, 4))


def test_training_steps_with_the_update_writing_the_copies_equal_those_without():
    """The compiled update writes the bf16 copies; the steps' results are the ones of casting
    in each forward (up to the compiled update's rounding), and each copy always holds its
    updated weight; also with a second step function on the same optimizer and model, whose
    copies are its own."""
    from alexnet.train.optim import PaperSGD
    from alexnet.train.step import make_train_step

    def run(with_copies: bool, two_step_functions: bool = False) -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = nn.Sequential(Linear(32, 64), nn.ReLU(), Linear(64, 10))
        opt = PaperSGD(list(net.parameters()), lr=0.05)
        steps = [make_train_step(net, opt, amp=True, compile_optimizer=with_copies)
                 for _ in range(2 if two_step_functions else 1)]
        assert (steps[0].copies is not None) == with_copies
        torch.manual_seed(1)
        losses = []
        for _ in range(4):
            x, y = torch.randn(16, 32), torch.randint(0, 10, (16,))
            losses.append(steps[0](x, y)[0])
            for w, c in (steps[0].copies.pairs() if with_copies else []):
                torch.testing.assert_close(c, w.detach().bfloat16(), rtol=0, atol=0)
            assert all(m.weight_bf16 is None for m in net if isinstance(m, Linear))
        return losses + [p.detach() for p in net.parameters()]

    without = run(False)
    for got in (run(True), run(True, two_step_functions=True)):
        for a, b in zip(got, without, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
