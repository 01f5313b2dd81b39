"""Local response normalization (§3.3) and the released code's same-map response norm.

§3.3:  b[i] = a[i] / (k + α · Σ_{j=max(0, i-n/2)}^{min(N-1, i+n/2)} a[j]²)^β,
with k=2, n=5, α=1e-4, β=0.75.

The paper's text multiplies the window sum by α; the released code divides α by n first
(`layer.py`: `scale /= size`), and `torch.nn.LocalResponseNorm` does the same. The two differ by a
factor n=5 in the effective coefficient. We default to α/n because the weights behind the paper's
numbers were trained with the released code (docs/paper-facts.md, "Where the paper and the
released code differ").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def lrn_reference(x: torch.Tensor, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                  k: float = 2.0, alpha_over_n: bool = True, *, groups: int = 1) -> torch.Tensor:
    """Cross-channel LRN of (B, C, H, W) `x` in plain PyTorch (the CPU path and the reference).

    The window of channel i is [i - size//2, i + (size-1)//2], clipped at the edges; for odd
    `size` that is the paper's centred window of n channels. `groups=g`: the window stays inside
    each of g equal blocks of channels (the two towers' own maps).

    bf16/fp16 are normalised in fp32. The channel-window sum is `size` shifted slice additions
    (no padded copy, any memory layout), and the gradient is written out by hand so that its
    window sum is the same cheap one: about 5x faster forward + backward on a CPU than
    autograd through `lrn_avg_pool` (benchmarks/cpu_lrn.py). Both halves are
    `torch.library.custom_op`s, so torch.compile calls them as they are: Inductor's own fusion of
    the formula recomputes s^β inside every window term of the backward and is ~2x slower.
    """
    if x.dim() != 4:
        raise ValueError(f"LRN expects (B, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] % groups:
        raise ValueError(f"{x.shape[1]} channels do not split into {groups} groups")
    coef = alpha / size if alpha_over_n else alpha
    if not (x.requires_grad and torch.is_grad_enabled()) or torch.jit.is_tracing() \
            or torch.onnx.is_in_onnx_export():
        # inference and ONNX/TorchScript export: the same formula as plain ops (no custom op
        # to export, and no s, s^β kept for a backward)
        return _lrn_forward(x, int(size), float(coef), float(beta), float(k), int(groups))[0]
    return _lrn_op(x, int(size), float(coef), float(beta), float(k), int(groups))[0]


def lrn_avg_pool(x: torch.Tensor, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                 k: float = 2.0, alpha_over_n: bool = True) -> torch.Tensor:
    """The earlier `lrn_reference`: the window sum as an `avg_pool3d` over a zero-padded x²,
    gradients by autograd. Same values as `lrn_reference` up to rounding; kept as its
    cross-check (tests/test_lrn.py) and as the baseline of benchmarks/cpu_lrn.py."""
    coef = alpha / size if alpha_over_n else alpha
    xf = _upcast(x)
    sq = xf.square().unsqueeze(1)  # (B, 1, C, H, W)
    # Zero-pad the channel axis so edge windows are clipped sums, then sum `size` neighbours.
    sq = F.pad(sq, (0, 0, 0, 0, size // 2, (size - 1) // 2))
    window = F.avg_pool3d(sq, (size, 1, 1), stride=1).squeeze(1) * size  # (B, C, H, W)
    return (xf / (k + coef * window).pow(beta)).to(x.dtype)


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 are normalised in fp32; fp32 and fp64 stay as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _grouped(x: torch.Tensor, groups: int) -> tuple[torch.Tensor, int]:
    """(B, C, H, W) -> a view (B, g, C/g, H, W) and the channel dim the window runs along (a
    view in any memory layout, unlike the (B·g, C/g, H, W) reshape, which copies NHWC)."""
    return (x.unflatten(1, (groups, -1)), 2) if groups > 1 else (x, 1)


def _window_sum(q: torch.Tensor, before: int, after: int, dim: int, scale: float = 1.0,
                shift: float = 0.0) -> torch.Tensor:
    """shift + scale · Σ_{j=i-before}^{i+after} q[j] along `dim`, zero outside the edges."""
    c = q.shape[dim]
    # Start from shift + scale·q (a copy with q's strides), add the shifted neighbours in place
    # on narrowed views: no padded copy and no temporaries.
    if (scale, shift) == (1.0, 0.0):
        total = q.clone()
    else:
        total = torch.add(torch.tensor(shift, dtype=q.dtype), q, alpha=scale)
    for j in range(-before, after + 1):
        if j == 0 or abs(j) >= c:
            continue
        n = c - abs(j)  # total[i] += q[i + j] wherever both exist
        total.narrow(dim, max(0, -j), n).add_(q.narrow(dim, max(0, j), n), alpha=scale)
    return total


def _power(s: torch.Tensor, beta: float) -> torch.Tensor:
    """s^β; §3.3's β = 0.75 as √s · √√s, within 1 ulp of `pow` and ~3x faster on a CPU
    (`pow` goes through exp and log: 1.5 vs 0.5 ms for conv1's 32×96×15×15 maps, measured on
    a 2-core Xeon)."""
    if beta == 0.75:
        root = s.sqrt()
        return root.mul_(root.sqrt())
    return s.pow(beta)


def _lrn_forward(x: torch.Tensor, size: int, coef: float, beta: float, k: float,
                 groups: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """y = x / s^β with s = k + coef · Σ_window x², in x's layout; also s and s^β (fp32 for
    bf16/fp16 `x`), which the backward reuses."""
    xv, dim = _grouped(x, groups)
    xf = _upcast(xv)
    s = _window_sum(xf * xf, size // 2, (size - 1) // 2, dim, coef, k)
    p = _power(s, beta)
    y = (xf / p).to(x.dtype)
    return y.flatten(1, 2) if groups > 1 else y, s, p


# The gradient. With y_i = x_i s_i^-β, s_i = k + c Σ_{j∈W(i)} x_j²:
#   dx_j = g_j s_j^-β − 2cβ x_j Σ_{i: j∈W(i)} g_i x_i s_i^(-β-1),
# where the transposed window {i: j∈W(i)} = [j − (size-1)//2, j + size//2] (the same one for odd
# size). The forward op also returns s and s^β for the backward (not differentiable outputs).

@torch.library.custom_op("alexnet::lrn_cpu_forward", mutates_args=())
def _lrn_op(x: torch.Tensor, size: int, coef: float, beta: float, k: float,
            groups: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _lrn_forward(x, size, coef, beta, k, groups)


@_lrn_op.register_fake
def _(x, size, coef, beta, k, groups):
    return _lrn_forward(x, size, coef, beta, k, groups)  # fake tensors: the same strides


@torch.library.custom_op("alexnet::lrn_cpu_backward", mutates_args=())
def _lrn_backward_op(g: torch.Tensor, x: torch.Tensor, s: torch.Tensor, p: torch.Tensor,
                     size: int, coef: float, beta: float, groups: int) -> torch.Tensor:
    return _lrn_backward(g, x, s, p, size, coef, beta, groups)


@_lrn_backward_op.register_fake
def _(g, x, s, p, size, coef, beta, groups):
    return _lrn_backward(g, x, s, p, size, coef, beta, groups)


def _lrn_backward(g: torch.Tensor, x: torch.Tensor, s: torch.Tensor, p: torch.Tensor,
                  size: int, coef: float, beta: float, groups: int) -> torch.Tensor:
    xv, dim = _grouped(x, groups)
    xf = _upcast(xv)
    gs = _grouped(g, groups)[0].to(p.dtype) / p  # g · s^-β
    u = (gs * xf).div_(s)  # g x s^(-β-1)
    window = _window_sum(u, (size - 1) // 2, size // 2, dim)
    dx = gs.addcmul_(xf, window, value=-2.0 * coef * beta).to(x.dtype)
    return dx.flatten(1, 2) if groups > 1 else dx


def _setup_context(ctx, inputs, output) -> None:
    x, size, coef, beta, _, groups = inputs
    _, s, p = output
    ctx.mark_non_differentiable(s, p)
    ctx.set_materialize_grads(False)  # no zero tensors for the unused s and p gradients
    ctx.save_for_backward(x, s, p)
    ctx.args = (size, coef, beta, groups)


def _backward(ctx, grad: torch.Tensor | None, *_):
    if grad is None:
        return None, None, None, None, None, None
    x, s, p = ctx.saved_tensors
    return _lrn_backward_op(grad, x, s, p, *ctx.args), None, None, None, None, None


_lrn_op.register_autograd(_backward, setup_context=_setup_context)


class LocalResponseNorm(nn.Module):
    """LRN across channels (§3.3) with an explicit α convention.

    `alpha_over_n=True` (default): coefficient α/n, as the released code and torch do.
    `alpha_over_n=False`: coefficient α, as the paper's formula reads.
    `groups=2`: the window stays inside each half of the channels, as in the two-tower net
    where each GPU normalised its own 48 (conv1) or 128 (conv2) maps (layers-145.cfg: rnorm1a/b).
    On CUDA the fused kernel of `alexnet.accel.lrn_triton` is used when it is available.
    """

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
                 alpha_over_n: bool = True, groups: int = 1) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k
        self.alpha_over_n, self.groups = alpha_over_n, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = (self.size, self.alpha, self.beta, self.k, self.alpha_over_n)
        if x.is_cuda:
            fused = _fused_lrn()
            if fused is not None and fused.available(x):  # NCHW or channels_last, no copy
                return fused.lrn(x, *args, groups=self.groups)
        return lrn_reference(x, *args, groups=self.groups)

    def extra_repr(self) -> str:
        conv = "alpha/n" if self.alpha_over_n else "alpha"
        groups = f", groups={self.groups}" if self.groups > 1 else ""
        return (f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, "
                f"({conv}){groups}")


def _fused_lrn():
    try:
        from alexnet.accel import lrn_triton as fused
    except Exception:  # no Triton, or the kernels part is not installed: plain PyTorch
        return None
    return fused


class SameMapResponseNorm(nn.Module):
    """The released code's `type=rnorm` layer after conv2: normalise over a size×size spatial
    window of the same map, b = a / (k + α/size² · Σ_window a²)^β (`layer.py`: `scale /= size**2`).

    Not in the paper. The `original` model builds it with layer-params-145.cfg's constants
    (`cnorm2a`: scale α = 0.001, pow β = 0.75, size 5) and k = 1, which cuda-convnet's
    response-norm kernel hard-codes (the denominator is 1 + scale·Σ; only the cross-map norm has
    `minDiv`).
    """

    def __init__(self, size: int = 5, alpha: float = 1e-3, beta: float = 0.75,
                 k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # avg_pool with zero padding, count_include_pad=True: mean over the full size² window.
        xf = _upcast(x)
        mean_sq = F.avg_pool2d(xf.square(), self.size, stride=1, padding=self.size // 2,
                               count_include_pad=True)
        return (xf / (self.k + self.alpha * mean_sq).pow(self.beta)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
