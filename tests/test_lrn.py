"""LRN (§3.3) against a naive loop over the formula, in both α conventions, and against torch."""

from __future__ import annotations

import pytest
import torch

from alexnet.models.local_response_norm import (
    LocalResponseNorm,
    SameMapResponseNorm,
    lrn_avg_pool,
    lrn_reference,
)


def naive_lrn(a: torch.Tensor, n: int, alpha: float, beta: float, k: float,
              alpha_over_n: bool) -> torch.Tensor:
    """b[i] = a[i] / (k + c Σ_{j=max(0,i-n/2)}^{min(N-1,i+n/2)} a[j]²)^β, c = α or α/n."""
    a = a.double()
    c = alpha / n if alpha_over_n else alpha
    N = a.shape[1]
    b = torch.empty_like(a)
    for i in range(N):
        lo, hi = max(0, i - n // 2), min(N - 1, i + n // 2)
        s = (a[:, lo:hi + 1] ** 2).sum(dim=1)
        b[:, i] = a[:, i] / (k + c * s) ** beta
    return b


@pytest.mark.parametrize("alpha_over_n", [True, False])
@pytest.mark.parametrize("channels", [1, 3, 7, 96])
def test_lrn_matches_formula(alpha_over_n: bool, channels: int) -> None:
    torch.manual_seed(0)
    # Large activations so that the α term matters (ReLU outputs of conv1 reach tens).
    x = torch.randn(2, channels, 5, 4, dtype=torch.float64) * 30
    for alpha in (1e-4, 1e-2):
        got = lrn_reference(x, 5, alpha, 0.75, 2.0, alpha_over_n)
        want = naive_lrn(x, 5, alpha, 0.75, 2.0, alpha_over_n)
        assert torch.allclose(got, want, rtol=1e-10, atol=0)


def test_conventions_differ_by_n() -> None:
    x = torch.randn(1, 8, 3, 3, dtype=torch.float64) * 30
    paper = lrn_reference(x, 5, 1e-4, 0.75, 2.0, alpha_over_n=False)
    code = lrn_reference(x, 5, 5e-4, 0.75, 2.0, alpha_over_n=True)
    assert torch.allclose(paper, code)
    assert not torch.allclose(paper, lrn_reference(x, 5, 1e-4, 0.75, 2.0, alpha_over_n=True))


def test_default_module_equals_torch() -> None:
    """The released code's α/n equals torch.nn.LocalResponseNorm(5, 1e-4, 0.75, 2)."""
    torch.manual_seed(0)
    x = torch.randn(4, 96, 11, 11) * 20
    ours = LocalResponseNorm()  # §3.3 values, α/n
    ref = torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    assert torch.allclose(ours(x), ref(x), rtol=1e-5, atol=1e-6)
    xg = x.clone().requires_grad_(True)
    xr = x.clone().requires_grad_(True)
    g = torch.randn_like(x)
    ours(xg).backward(g)
    ref(xr).backward(g)
    assert torch.allclose(xg.grad, xr.grad, rtol=1e-4, atol=1e-6)


def test_lrn_keeps_dtype() -> None:
    x = torch.randn(2, 6, 4, 4).to(torch.bfloat16)
    assert LocalResponseNorm()(x).dtype == torch.bfloat16


def test_same_map_norm_matches_formula() -> None:
    """released `rnorm`: b = a / (k + α/size² Σ_{size×size window} a²)^β, zero outside."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64) * 30
    size, alpha, beta, k = 5, 1e-2, 0.75, 2.0
    got = SameMapResponseNorm(size, alpha, beta, k)(x)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    want = torch.empty_like(x)
    for i in range(6):
        for j in range(7):
            s = (padded[:, :, i:i + size, j:j + size] ** 2).sum(dim=(2, 3))
            want[:, :, i, j] = x[:, :, i, j] / (k + alpha / size**2 * s) ** beta
    assert torch.allclose(got, want, rtol=1e-10)


# The window sum as shifted slices with a hand-written backward (`lrn_reference`) against the
# earlier avg_pool3d formula with autograd (`lrn_avg_pool`).

def _relu_input(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return (torch.randn(shape, dtype=torch.float64) * 20).relu().to(dtype)


def _forward_backward(f, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_(True)
    y = f(x)
    y.backward(g)
    return y.detach(), x.grad


@pytest.mark.parametrize("alpha_over_n", [True, False])
@pytest.mark.parametrize("size", [5, 4, 3])
@pytest.mark.parametrize("shape", [(4, 96, 7, 6), (2, 7, 3, 5), (3, 2, 4, 4)])
def test_slices_equal_avg_pool_fp32(shape, size: int, alpha_over_n: bool) -> None:
    x = _relu_input(shape, torch.float32)
    g = torch.randn(shape)
    args = (size, 1e-2, 0.75, 2.0, alpha_over_n)  # α=1e-2: the window term is large
    y, dx = _forward_backward(lambda t: lrn_reference(t, *args), x, g)
    y0, dx0 = _forward_backward(lambda t: lrn_avg_pool(t, *args), x, g)
    assert y.dtype == dx.dtype == torch.float32
    torch.testing.assert_close(y, y0, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(dx, dx0, rtol=1e-5, atol=1e-6 * dx0.abs().max().item())


@pytest.mark.parametrize("channels_last", [False, True])
def test_slices_equal_avg_pool_bf16(channels_last: bool) -> None:
    shape = (4, 96, 7, 6)
    x = _relu_input(shape, torch.bfloat16)
    g = torch.randn(shape).to(torch.bfloat16)
    if channels_last:
        x, g = (t.contiguous(memory_format=torch.channels_last) for t in (x, g))
    y, dx = _forward_backward(lrn_reference, x, g)
    y0, dx0 = _forward_backward(lrn_avg_pool, x, g)
    assert y.dtype == dx.dtype == torch.bfloat16
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(y, y0, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(dx, dx0, rtol=2e-2, atol=2e-2 * dx0.abs().max().item())


@pytest.mark.parametrize("size,groups", [(5, 1), (4, 1), (5, 2)])
def test_gradcheck(size: int, groups: int) -> None:
    x = (torch.randn(2, 8, 3, 2, dtype=torch.float64) * 20).requires_grad_(True)
    f = LocalResponseNorm(size, alpha=1e-2, groups=groups)
    assert torch.autograd.gradcheck(f, (x,))
    xc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert torch.autograd.gradcheck(f, (xc,))


@pytest.mark.parametrize("groups", [1, 2])
def test_channels_last_equals_nchw(groups: int) -> None:
    x = _relu_input((3, 16, 5, 4), torch.float32)
    g = torch.randn(x.shape)
    lrn = LocalResponseNorm(alpha=1e-2, groups=groups)
    y, dx = _forward_backward(lrn, x, g)
    x_cl, g_cl = (t.contiguous(memory_format=torch.channels_last) for t in (x, g))
    y_cl, dx_cl = _forward_backward(lrn, x_cl, g_cl)
    assert y_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y_cl, y, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(dx_cl, dx, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("channels_last", [False, True])
def test_groups_equal_separate_halves(channels_last: bool) -> None:
    x = _relu_input((2, 12, 4, 3), torch.float64)
    g = torch.randn(x.shape, dtype=torch.float64)
    if channels_last:
        x, g = (t.contiguous(memory_format=torch.channels_last) for t in (x, g))
    y, dx = _forward_backward(LocalResponseNorm(alpha=1e-2, groups=2), x, g)
    for h in range(2):
        part = slice(6 * h, 6 * h + 6)
        y_h, dx_h = _forward_backward(lambda t: lrn_avg_pool(t, 5, 1e-2), x[:, part], g[:, part])
        torch.testing.assert_close(y[:, part], y_h, rtol=1e-12, atol=0)
        torch.testing.assert_close(dx[:, part], dx_h, rtol=1e-10, atol=1e-14)


def test_no_grad_path_equals_autograd_path() -> None:
    x = _relu_input((2, 10, 3, 3), torch.float32)
    with torch.no_grad():
        y_plain = lrn_reference(x)
    y_fn = lrn_reference(x.clone().requires_grad_(True))
    assert torch.equal(y_plain, y_fn.detach())


@pytest.mark.slow
def test_compiled_equals_eager() -> None:
    """Under torch.compile the LRN is the same two custom ops (opaque to Inductor)."""
    x = _relu_input((2, 12, 5, 5), torch.bfloat16).contiguous(memory_format=torch.channels_last)
    g = torch.randn(x.shape).to(torch.bfloat16)
    lrn = LocalResponseNorm(alpha=1e-2, groups=2)
    y, dx = _forward_backward(lrn, x, g)
    y_c, dx_c = _forward_backward(torch.compile(lrn, fullgraph=True), x, g)
    assert torch.equal(y_c, y) and torch.equal(dx_c, dx)
