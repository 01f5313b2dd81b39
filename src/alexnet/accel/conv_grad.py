"""`WindowGradConv2d`: `torch.nn.Conv2d` with a faster bf16 weight gradient on the CPU where
oneDNN's is slow: small maps, and the first layer's few input channels. `alexnet.accel.
use_cpu_kernels` swaps it in for a model's convolutions when a CPU training step is built.

Measured on a 2-core Xeon with AMX-BF16, `paper` at batch 32 (benchmarks/README.md):
- at 64-px inputs (the QUICK mode of a CPU run) conv3-conv5 see 3×3 maps. oneDNN's bf16 weight
  gradient of conv3 takes 11-20 ms; the same sum written as one matrix product over the 3×3
  windows takes 3-4 ms; the three layers' backward went from ~30 to ~8 ms of a ~110 ms step.
  From 4×4 maps up (grouped layers) oneDNN is as fast or faster.
- conv1 (11×11, stride 4) on 1 or 3 input channels: oneDNN's bf16 weight gradient takes
  4.2-4.4 ms at 64 px, the matrix product over the windows 1.4 (1 channel) to 3.2 ms
  (3 channels); at 224 px the two are equal (26-27 ms).
In fp32 oneDNN is as fast or faster, so everything else keeps `torch.nn.Conv2d`'s path, as does
every forward and the input gradient. The parameters, their names and
`isinstance(m, nn.Conv2d)` are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Largest output map (height × width) that takes the matrix-product weight gradient: 3×3, the
# maps of conv3-conv5 at 64 px (measured above; grouped layers lose from 4×4 on).
SMALL_MAP = 9
# Layers with at most this many input channels (conv1 on grayscale or RGB) take it at any size.
FEW_CHANNELS = 3


def weight_grad(x: torch.Tensor, grad_out: torch.Tensor, weight_shape: torch.Size,
                padding: int, groups: int, stride: int = 1) -> torch.Tensor:
    """∂L/∂w of a convolution as one batched matrix product:
    x (B, C, H, W), grad_out (B, O, Ho, Wo) -> (O, C/groups, kh, kw).

    dw[o, c, i, j] = Σ_{b, y, x} grad_out[b, o, y, x] · x_padded[b, c, s·y + i, s·x + j]: per
    group, grad_out (O/g, B·Ho·Wo) times the windows (B·Ho·Wo, C/g·kh·kw). The windows are
    gathered in x's memory order: channels innermost for channels_last x (the gradient then
    comes out channels_last too, as the weight is), else kh·kw innermost. Gathered the other
    way, conv3-conv5's copies took 1.3-2.1 ms each instead of 0.4-0.5 (channels_last, batch 32)."""
    out_ch, cg, kh, kw = weight_shape
    b = x.shape[0]
    xp = F.pad(x, (padding,) * 4)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        windows = xp.permute(0, 2, 3, 1).unfold(1, kh, stride).unfold(2, kw, stride)
        ho, wo = windows.shape[1], windows.shape[2]  # windows: (B, Ho, Wo, C, kh, kw)
        cols = (windows.reshape(b, ho, wo, groups, cg, kh, kw).permute(3, 0, 1, 2, 5, 6, 4)
                .reshape(groups, b * ho * wo, kh * kw * cg))
        g = (grad_out.permute(0, 2, 3, 1).reshape(b * ho * wo, groups, out_ch // groups)
             .permute(1, 2, 0))  # (g, O/g, B·Ho·Wo), a view
        return torch.bmm(g, cols).reshape(out_ch, kh, kw, cg).permute(0, 3, 1, 2)
    windows = xp.unfold(2, kh, stride).unfold(3, kw, stride)  # (B, C, Ho, Wo, kh, kw)
    ho, wo = windows.shape[2], windows.shape[3]
    cols = (windows.reshape(b, groups, cg, ho, wo, kh, kw).permute(1, 0, 3, 4, 2, 5, 6)
            .reshape(groups, b * ho * wo, cg * kh * kw))
    g = (grad_out.reshape(b, groups, out_ch // groups, ho * wo).permute(1, 2, 0, 3)
         .reshape(groups, out_ch // groups, b * ho * wo))
    return torch.bmm(g, cols).reshape(out_ch, cg, kh, kw)


class _WindowGradConv(torch.autograd.Function):
    """F.conv2d forward and input gradient; the weight gradient by `weight_grad`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor,  # type: ignore[override]
                bias: torch.Tensor | None, padding: int, groups: int,
                stride: int) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.groups, ctx.stride = padding, groups, stride
        return F.conv2d(x, weight, bias, stride, padding, 1, groups)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        p, g, s = ctx.padding, ctx.groups, ctx.stride
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, [s, s], [p, p], [1, 1], False, [0, 0], g,
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_w = weight_grad(x, grad_out, weight.shape, p, g, s)
        if ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None


class WindowGradConv2d(nn.Conv2d):
    """`nn.Conv2d`; a layer training in bf16 on the CPU computes its weight gradient by
    `weight_grad` when it has stride 1 and an output map of at most `SMALL_MAP` positions, or
    one group of at most `FEW_CHANNELS` input channels."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # `input` as nn.Conv2d names it, here and in `_window_grad_path`: torch.jit.trace's check
        # compares two traces' value names, which come from the arguments a tensor passes
        # through; other names made the `alexnet export --format torchscript` check fail.
        if not self._window_grad_path(input):
            return super().forward(input)
        x, weight, bias = input, self.weight, self.bias
        if torch.is_autocast_enabled("cpu"):  # cast as autocast would, then run without it
            dtype = torch.get_autocast_dtype("cpu")
            x, weight = x.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        with torch.autocast("cpu", enabled=False):
            return _WindowGradConv.apply(x, weight, bias, self.padding[0], self.groups,
                                         self.stride[0])

    def _window_grad_path(self, input: torch.Tensor) -> bool:
        x = input
        if (x.device.type != "cpu" or not torch.is_grad_enabled() or not self.weight.requires_grad
                or self.stride[0] != self.stride[1] or self.dilation != (1, 1)
                or self.padding_mode != "zeros" or isinstance(self.padding, str)
                or self.padding[0] != self.padding[1] or x.dim() != 4):
            return False
        bf16 = x.dtype == torch.bfloat16 or (
            torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        if not bf16:
            return False
        if self.groups == 1 and self.in_channels <= FEW_CHANNELS:
            return True
        ho = x.shape[-2] + 2 * self.padding[0] - self.kernel_size[0] + 1
        wo = x.shape[-1] + 2 * self.padding[1] - self.kernel_size[1] + 1
        return self.stride == (1, 1) and ho * wo <= SMALL_MAP
