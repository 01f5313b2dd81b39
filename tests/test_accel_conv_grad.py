"""`alexnet.accel.conv_grad`: the matrix-product bf16 weight gradient equals the convolution's own,
and is used only where it was measured to be faster (CPU, bf16; stride 1 with maps of at most
3×3, or a first layer of at most 3 input channels at any stride)."""

import pytest
import torch
from torch import nn

from alexnet.accel.conv_grad import WindowGradConv2d as Conv2d
from alexnet.accel.conv_grad import weight_grad
from conftest import bf16_grads_eager_and_compiled


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-2) -> None:
    """bf16-close as a whole: ‖a - b‖ ≤ rel·‖b‖. Element by element, bf16 weight gradients of
    different summation orders differ by a rounding step (1/8 near 32), and which elements do
    depends on the CPU's bf16 (native or emulated by oneDNN)."""
    a, b = a.float(), b.float()
    assert a.shape == b.shape and a.dtype == b.dtype
    assert (a - b).norm() <= rel * b.norm(), f"{(a - b).norm() / b.norm():.4f} > {rel}"


def _grads(conv: nn.Module, x: torch.Tensor, amp: bool) -> tuple[torch.Tensor, ...]:
    conv.zero_grad()
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        out = conv(x)
    (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    return out.detach().float(), x.grad, conv.weight.grad, conv.bias.grad, out.grad_fn


@pytest.mark.parametrize(("cin", "cout", "k", "pad", "groups"),
                         [(32, 48, 3, 1, 1), (32, 48, 3, 1, 2), (16, 24, 5, 2, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_weight_grad_equals_the_convolutions_own(cin, cout, k, pad, groups, channels_last):
    torch.manual_seed(0)
    x = torch.randn(4, cin, 3, 3)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(cout, cin // groups, k, k)
    go = torch.randn(4, cout, 3, 3)
    want = torch.nn.grad.conv2d_weight(x, w.shape, go, padding=pad, groups=groups)
    torch.testing.assert_close(weight_grad(x, go, w.shape, pad, groups), want,
                               rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cin", [1, 3])
def test_strided_weight_grad_equals_the_convolutions_own(cin):
    torch.manual_seed(0)
    x = torch.randn(2, cin, 67, 67)  # conv1 at 64 px after its right/bottom padding
    w = torch.randn(96, cin, 11, 11)
    go = torch.randn(2, 96, 15, 15)
    want = torch.nn.grad.conv2d_weight(x, w.shape, go, stride=4)
    torch.testing.assert_close(weight_grad(x, go, w.shape, 0, 1, stride=4), want,
                               rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("cin", [1, 3])
def test_bf16_training_of_a_first_layer_takes_the_matrix_product_path(cin):
    torch.manual_seed(0)
    ours = Conv2d(cin, 16, 11, stride=4)
    ref = nn.Conv2d(cin, 16, 11, stride=4)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(4, cin, 67, 67)
    got, want = _grads(ours, x, amp=True), _grads(ref, x, amp=True)
    assert "_WindowGradConv" in type(got[-1]).__name__
    for a, b in zip(got[:-1], want[:-1], strict=True):  # output, dx, dw, db
        _close(a, b)
    _close(got[2], _grads(ref, x, amp=False)[2])  # and bf16-close to fp32's


@pytest.mark.parametrize("groups", [1, 2])
def test_bf16_training_on_3x3_maps_takes_the_small_map_path_with_the_same_gradients(groups):
    torch.manual_seed(0)
    ours = Conv2d(32, 48, 3, padding=1, groups=groups)
    ref = nn.Conv2d(32, 48, 3, padding=1, groups=groups)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(8, 32, 3, 3)
    got, want = _grads(ours, x, amp=True), _grads(ref, x, amp=True)
    assert "_WindowGradConv" in type(got[-1]).__name__
    assert "_WindowGradConv" not in type(want[-1]).__name__
    for a, b in zip(got[:-1], want[:-1], strict=True):  # output, dx, dw, db
        _close(a, b)
    _close(got[2], _grads(ref, x, amp=False)[2])  # and bf16-close to fp32's


@pytest.mark.parametrize(("size", "amp", "stride", "grad"), [
    (3, False, 1, True),  # fp32: oneDNN is as fast
    (4, True, 1, True),  # 4×4 maps: oneDNN is as fast for grouped layers
    (9, True, 2, True),  # stride 2 with more than 3 input channels
    (3, True, 1, False),  # no gradient: inference
])
def test_everything_else_keeps_the_ordinary_convolution(size, amp, stride, grad):
    conv = Conv2d(8, 8, 3, padding=1, stride=stride)
    x = torch.randn(2, 8, size, size)
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16,
                                                      enabled=amp):
        out = conv(x)
    assert out.grad_fn is None or "_WindowGradConv" not in type(out.grad_fn).__name__
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        torch.testing.assert_close(out, nn.Conv2d.forward(conv, x))


def test_compiled_gradients_equal_eager_ones():
    torch.manual_seed(0)
    net = nn.Sequential(Conv2d(16, 32, 3, padding=1), nn.ReLU(), Conv2d(32, 32, 3, padding=1,
                                                                      groups=2))
    x = torch.randn(4, 16, 3, 3)
    eager, compiled = bf16_grads_eager_and_compiled(net, x)
    for a, b in zip(compiled, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)
