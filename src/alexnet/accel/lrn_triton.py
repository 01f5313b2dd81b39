"""Fused cross-channel LRN (§3.3) for CUDA in Triton: forward and backward, both α conventions.

    d_i = k + a · Σ_{j ∈ W(i)} x_j²,     y_i = x_i · d_i^-β,
    W(i) = [i - size//2, i + (size-1)//2] clipped to [0, C),  a = α/size or α,

    ∂L/∂x_j = g_j · d_j^-β  -  2aβ · x_j · Σ_{i : j ∈ W(i)} g_i · x_i · d_i^(-β-1),

with g = ∂L/∂y and i running over [j - (size-1)//2, j + size//2] (the channels whose window holds
j). `alexnet.models.local_response_norm.lrn_reference` is the reference; this module must
agree with it.

Algorithm (one program = a tile of BLOCK_P pixels × all C channels of one image): a window sum
over channels is a sum of `size` copies of the tile loaded at channel offsets -size//2 ..
(size-1)//2 (masked to 0 outside [0, C)); the shifted loads hit L1/L2, so DRAM sees each tensor
once. Sums, powers and the backward's neighbour sum are in fp32 whatever the input dtype.
The backward saves only x (which the ReLU before the LRN keeps alive anyway) and recomputes
d at the `size` neighbours of each channel, trading arithmetic for memory: forward reads x and
writes y, backward reads x and g and writes ∂L/∂x.

Layouts: contiguous NCHW and channels_last (NHWC) run without copies (strides are passed to the
kernel); anything else is made contiguous first. fp32, bf16 and fp16 inputs; output in the
input's dtype. The ops are `torch.library.custom_op`s, so `torch.compile` treats them as opaque
calls without graph breaks.

Set TRITON_INTERPRET=1 before importing triton to run the kernels on CPU tensors (tests).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

__all__ = ["MAX_CHANNELS", "available", "lrn"]

MAX_CHANNELS = 1024  # one tile holds every channel of a pixel; wider inputs use the reference
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
_FWD_TILE = 4096  # elements per program (BLOCK_P · BLOCK_C)
_BWD_TILE = 2048  # the backward keeps more tiles live: a smaller tile limits register spills


@triton.jit
def _window_sum_sq(x_ptr, base, c, lo, hi, pmask, sC, CENTER: tl.constexpr, SIZE: tl.constexpr,
                   LEFT: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """Σ x² over channels [c' - LEFT, c' - LEFT + SIZE) with c' = c + CENTER; (BLOCK_P, BLOCK_C)
    in fp32, zero outside c's group [lo, hi)."""
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for o in tl.static_range(SIZE):
        cc = c + (CENTER + o - LEFT)
        m = pmask[:, None] & ((cc >= lo) & (cc < hi))[None, :]
        v = tl.load(x_ptr + base[:, None] + cc[None, :].to(tl.int64) * sC, mask=m,
                    other=0.0).to(tl.float32)
        acc += v * v
    return acc


@triton.jit
def _lrn_fwd_kernel(x_ptr, y_ptr, HW, C, GROUP_C, sN, sHW, sC, coef, beta, k,
                    SIZE: tl.constexpr, LEFT: tl.constexpr,
                    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # grid: (images, pixel blocks). Offsets: n·sN + hw·sHW + c·sC.
    n = tl.program_id(0).to(tl.int64)
    hw = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)  # (BLOCK_P,)
    c = tl.arange(0, BLOCK_C)  # (BLOCK_C,)
    lo = c // GROUP_C * GROUP_C  # windows stay inside the channel's group (tower)
    hi = tl.minimum(lo + GROUP_C, C)
    pmask = hw < HW
    base = n * sN + hw.to(tl.int64) * sHW
    d = k + coef * _window_sum_sq(x_ptr, base, c, lo, hi, pmask, sC, 0, SIZE, LEFT,
                                  BLOCK_P, BLOCK_C)
    m = pmask[:, None] & (c < C)[None, :]
    offs = base[:, None] + c[None, :].to(tl.int64) * sC  # (BLOCK_P, BLOCK_C)
    x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32)
    y = x * tl.exp2(-beta * tl.log2(d))  # x · d^-β
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _lrn_bwd_kernel(x_ptr, g_ptr, dx_ptr, HW, C, GROUP_C, sN, sHW, sC, coef, beta, k,
                    SIZE: tl.constexpr, LEFT: tl.constexpr,
                    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    hw = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.arange(0, BLOCK_C)
    lo = c // GROUP_C * GROUP_C
    hi = tl.minimum(lo + GROUP_C, C)
    pmask = hw < HW
    base = n * sN + hw.to(tl.int64) * sHW
    # Channels i whose window holds j: i - j in [-(SIZE - 1 - LEFT), LEFT].
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)  # Σ_i g_i x_i d_i^(-β-1)
    own = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)  # d_j^-β
    for s in tl.static_range(SIZE):
        shift = s - (SIZE - 1 - LEFT)  # a constexpr
        ci = c + shift
        mi = pmask[:, None] & ((ci >= lo) & (ci < hi))[None, :]  # i in j's group
        offs_i = base[:, None] + ci[None, :].to(tl.int64) * sC
        log_d = tl.log2(k + coef * _window_sum_sq(x_ptr, base, c, lo, hi, pmask, sC, shift,
                                                  SIZE, LEFT, BLOCK_P, BLOCK_C))
        x_i = tl.load(x_ptr + offs_i, mask=mi, other=0.0).to(tl.float32)
        g_i = tl.load(g_ptr + offs_i, mask=mi, other=0.0).to(tl.float32)
        acc += tl.where(mi, g_i * x_i * tl.exp2(-(beta + 1.0) * log_d), 0.0)
        if shift == 0:
            own = tl.exp2(-beta * log_d)
    m = pmask[:, None] & (c < C)[None, :]
    offs = base[:, None] + c[None, :].to(tl.int64) * sC
    x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=m, other=0.0).to(tl.float32)
    dx = g * own - (2.0 * coef * beta) * x * acc
    tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=m)


def _geometry(x: torch.Tensor, groups: int,
              tile: int) -> tuple[tuple[int, int], tuple[int, ...], dict]:
    """Grid, (HW, C, C/groups, sN, sHW, sC) and block sizes for an NCHW-contiguous or
    channels_last x."""
    n, c, h, w = x.shape
    s_n, s_c, s_h, s_w = x.stride()
    # H and W merge into one pixel axis (s_h == W·s_w in both layouts). A size-1 dimension's
    # stride is arbitrary (PyTorch ignores it for is_contiguous), so with W = 1 step by H's.
    hw, s_hw = h * w, (s_w if w > 1 else s_h)
    if n > 1 and s_n == hw * s_hw:  # channels_last: the images merge into one pixel axis
        n, hw = 1, n * hw
    block_c = triton.next_power_of_2(c)
    block_p = max(1, min(tile // block_c, triton.next_power_of_2(hw)))
    grid = (n, triton.cdiv(hw, block_p))
    return grid, (hw, c, c // groups, s_n, s_hw, s_c), {"BLOCK_P": block_p, "BLOCK_C": block_c}


def _coef(size: int, alpha: float, alpha_over_n: bool) -> float:
    return alpha / size if alpha_over_n else alpha


@torch.library.custom_op("alexnet::lrn_forward", mutates_args=())
def _lrn_forward(x: torch.Tensor, size: int, alpha: float, beta: float, k: float,
                 alpha_over_n: bool, groups: int) -> torch.Tensor:
    y = torch.empty_like(x)
    if x.numel():
        grid, dims, blocks = _geometry(x, groups, _FWD_TILE)
        _lrn_fwd_kernel[grid](x, y, *dims, _coef(size, alpha, alpha_over_n), beta, k,
                              SIZE=size, LEFT=size // 2, **blocks)
    return y


@_lrn_forward.register_fake
def _(x, size, alpha, beta, k, alpha_over_n, groups):
    return torch.empty_like(x)


@torch.library.custom_op("alexnet::lrn_backward", mutates_args=())
def _lrn_backward(grad: torch.Tensor, x: torch.Tensor, size: int, alpha: float, beta: float,
                  k: float, alpha_over_n: bool, groups: int) -> torch.Tensor:
    dx = torch.empty_like(x)
    if x.numel():
        grid, dims, blocks = _geometry(x, groups, _BWD_TILE)
        _lrn_bwd_kernel[grid](x, grad, dx, *dims, _coef(size, alpha, alpha_over_n), beta, k,
                              SIZE=size, LEFT=size // 2, **blocks)
    return dx


@_lrn_backward.register_fake
def _(grad, x, size, alpha, beta, k, alpha_over_n, groups):
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output) -> None:
    x, *args = inputs
    ctx.save_for_backward(x)
    ctx.args = tuple(args)  # size, alpha, beta, k, alpha_over_n, groups


def _backward(ctx, grad: torch.Tensor):
    (x,) = ctx.saved_tensors
    grad = grad.contiguous(memory_format=_memory_format(x))  # the kernel reads x's strides
    return (_lrn_backward(grad, x, *ctx.args), None, None, None, None, None, None)


_lrn_forward.register_autograd(_backward, setup_context=_setup_context)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def available(x: torch.Tensor) -> bool:
    """Can `lrn` run on `x`: a 4-D fp32/bf16/fp16 CUDA tensor (CPU too under TRITON_INTERPRET=1)
    with at most MAX_CHANNELS channels."""
    on_device = x.is_cuda or (_INTERPRET and x.device.type == "cpu")
    return on_device and x.dim() == 4 and x.dtype in _DTYPES and x.shape[1] <= MAX_CHANNELS


def lrn(x: torch.Tensor, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0,
        alpha_over_n: bool = True, groups: int = 1) -> torch.Tensor:
    """Cross-channel LRN of (B, C, H, W) `x` with the fused kernels; differentiable.

    Same arguments and result as `alexnet.models.local_response_norm.lrn_reference` (check
    `available(x)` first).
    `groups=g` keeps every window inside its block of C/g channels (the two-tower net's LRN:
    each GPU normalised its own maps), the same as normalising the g blocks one by one, without
    a copy for channels_last inputs.
    """
    if not available(x):
        raise ValueError(f"fused LRN needs a 4-D fp32/bf16/fp16 CUDA tensor with at most "
                         f"{MAX_CHANNELS} channels, got {tuple(x.shape)} {x.dtype} on {x.device}")
    if size < 1:
        raise ValueError(f"LRN size must be >= 1, got {size}")
    if groups < 1 or x.shape[1] % groups:
        raise ValueError(f"groups={groups} must divide the {x.shape[1]} channels")
    x = x.contiguous(memory_format=_memory_format(x))
    return _lrn_forward(x, int(size), float(alpha), float(beta), float(k), bool(alpha_over_n),
                        int(groups))
