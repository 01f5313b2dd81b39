"""`Conv2d`: `torch.nn.Conv2d` with a faster weight gradient for small bf16 maps on the CPU.

At 64-px inputs (the QUICK mode of a CPU run) conv3-conv5 see 3×3 maps. There oneDNN's bf16
weight gradient is slow: measured on a 2-core Xeon with AMX-BF16, `paper` at batch 32, conv3's
weight gradient takes 11-20 ms, while the same sum written as one matrix product over the
3×3 windows takes 3-4 ms; the three layers' backward went from ~30 to ~8 ms of a ~110 ms step.
From 4×4 maps up (grouped layers) or in fp32, oneDNN is as fast or faster, so everything else
keeps `torch.nn.Conv2d`'s path, as does every forward and the input gradient. The parameters,
their names and `isinstance(m, nn.Conv2d)` are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Largest output map (height × width) that takes the matrix-product weight gradient: 3×3, the
# maps of conv3-conv5 at 64 px (measured above; grouped layers lose from 4×4 on).
SMALL_MAP = 9


def weight_grad(x: torch.Tensor, grad_out: torch.Tensor, weight_shape: torch.Size,
                padding: int, groups: int) -> torch.Tensor:
    """∂L/∂w of a stride-1 convolution as one batched matrix product:
    x (B, C, H, W), grad_out (B, O, Ho, Wo) -> (O, C/groups, kh, kw).

    dw[o, c, i, j] = Σ_{b, y, x} grad_out[b, o, y, x] · x_padded[b, c, y + i, x + j]: the windows
    (B·Ho·Wo, C/g·kh·kw) per group times grad_out (O/g, B·Ho·Wo)."""
    out_ch, cg, kh, kw = weight_shape
    b = x.shape[0]
    windows = F.pad(x, (padding,) * 4).unfold(2, kh, 1).unfold(3, kw, 1)  # (B, C, Ho, Wo, kh, kw)
    ho, wo = windows.shape[2], windows.shape[3]
    cols = (windows.reshape(b, groups, cg, ho, wo, kh, kw).permute(1, 0, 3, 4, 2, 5, 6)
            .reshape(groups, b * ho * wo, cg * kh * kw))
    g = (grad_out.reshape(b, groups, out_ch // groups, ho * wo).permute(1, 2, 0, 3)
         .reshape(groups, out_ch // groups, b * ho * wo))
    return torch.bmm(g, cols).reshape(out_ch, cg, kh, kw)


class _SmallMapConv(torch.autograd.Function):
    """F.conv2d (stride 1) forward and input gradient; the weight gradient by `weight_grad`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor,  # type: ignore[override]
                bias: torch.Tensor | None, padding: int, groups: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.groups = padding, groups
        return F.conv2d(x, weight, bias, 1, padding, 1, groups)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        p, g = ctx.padding, ctx.groups
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, [1, 1], [p, p], [1, 1], False, [0, 0], g,
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_w = weight_grad(x, grad_out, weight.shape, p, g)
        if ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


class Conv2d(nn.Conv2d):
    """`nn.Conv2d`; a stride-1 layer training in bf16 on the CPU with an output map of at most
    `SMALL_MAP` positions computes its weight gradient by `weight_grad`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # `input` as nn.Conv2d names it, here and in `_small_map_path`: torch.jit.trace's check
        # compares two traces' value names, which come from the arguments a tensor passes
        # through; other names made the `alexnet export --format torchscript` check fail.
        if not self._small_map_path(input):
            return super().forward(input)
        x, weight, bias = input, self.weight, self.bias
        if torch.is_autocast_enabled("cpu"):  # cast as autocast would, then run without it
            dtype = torch.get_autocast_dtype("cpu")
            x, weight = x.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        with torch.autocast("cpu", enabled=False):
            return _SmallMapConv.apply(x, weight, bias, self.padding[0], self.groups)

    def _small_map_path(self, input: torch.Tensor) -> bool:
        x = input
        if (x.device.type != "cpu" or not torch.is_grad_enabled() or not self.weight.requires_grad
                or self.stride != (1, 1) or self.dilation != (1, 1)
                or self.padding_mode != "zeros" or isinstance(self.padding, str)
                or self.padding[0] != self.padding[1] or x.dim() != 4):
            return False
        bf16 = x.dtype == torch.bfloat16 or (
            torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        ho = x.shape[-2] + 2 * self.padding[0] - self.kernel_size[0] + 1
        wo = x.shape[-1] + 2 * self.padding[1] - self.kernel_size[1] + 1
        return bf16 and ho * wo <= SMALL_MAP
