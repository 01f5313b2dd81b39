"""LRN (§3.3) against a naive loop over the formula, in both α conventions, and against torch."""

from __future__ import annotations

import pytest
import torch

from alexnet.models.lrn import LocalResponseNorm, SameMapResponseNorm, lrn_reference


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
