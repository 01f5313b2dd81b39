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
                  k: float = 2.0, alpha_over_n: bool = True) -> torch.Tensor:
    """Cross-channel LRN of (B, C, H, W) `x` in plain PyTorch (the CPU path and the reference).

    The window of channel i is [i - size//2, i + (size-1)//2], clipped at the edges; for odd
    `size` that is the paper's centred window of n channels.
    """
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


class LocalResponseNorm(nn.Module):
    """LRN across channels (§3.3) with an explicit α convention.

    `alpha_over_n=True` (default): coefficient α/n, as the released code and torch do.
    `alpha_over_n=False`: coefficient α, as the paper's formula reads.
    `groups=2`: the window stays inside each half of the channels, as in the two-tower net
    where each GPU normalised its own 48 (conv1) or 128 (conv2) maps (layers-145.cfg: rnorm1a/b).
    On CUDA the fused kernel of `alexnet.kernels.lrn` is used when it is available.
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
        if self.groups > 1:  # (B, C, H, W) -> (B·g, C/g, H, W): a view for contiguous NCHW
            b, c, h, w = x.shape
            return lrn_reference(x.reshape(b * self.groups, c // self.groups, h, w),
                                 *args).reshape(b, c, h, w)
        return lrn_reference(x, *args)

    def extra_repr(self) -> str:
        conv = "alpha/n" if self.alpha_over_n else "alpha"
        groups = f", groups={self.groups}" if self.groups > 1 else ""
        return (f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, "
                f"({conv}){groups}")


def _fused_lrn():
    try:
        from alexnet.kernels import lrn as fused
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
