"""`Fp32GradLinear`: `torch.nn.Linear` whose weight gradient is an fp32 matrix product when it
trains in bf16 on the CPU with a small batch (`alexnet.accel.use_cpu_kernels` swaps it in).

Under CPU bf16 autocast the weight gradient of a fc layer, grad_out (B, O)ᵀ · x (B, I), is a
bf16 product with only B terms per output, written in bf16 and then cast to the fp32 weight's
gradient. With few rows that product is bound by writing its O×I outputs, and the cast reads and
writes them again. The same product in fp32 from the upcast (B, O) and (B, I) inputs writes the
fp32 gradient directly. Measured on a 2-core Xeon with AMX-BF16 (fc7, 4096×4096; bf16 product
and cast vs fp32 product of the upcast inputs): batch 16 11.5 vs 4.4 ms, batch 32 13.9 vs
7.8 ms; batch 64 14.2 vs 17.0 ms, batch 128 15.2 vs 20.2 ms. So batches of at most
`SMALL_BATCH` rows take the fp32 product; the forward and the input gradient stay bf16, as under
autocast. The parameters, their names and `isinstance(m, nn.Linear)` are unchanged.

Autocast also casts each fp32 weight to bf16 in every forward: for fc7 a pass over 67 MB that
took 5-8 ms of a ~70 ms step. `Bf16Weights` lets the training step hand the layers bf16 copies
that the compiled update writes in the same loop as the weights (`alexnet.accel.
update_with_copies`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SMALL_BATCH = 32  # rows; from 64 on the bf16 product and its cast are faster (measured above)


# A custom op, so that torch.compile calls it as it is: Inductor rewrites a product of upcast
# bf16 tensors into the bf16 product followed by the cast, the very thing this avoids.
@torch.library.custom_op("alexnet::fp32_weight_grad", mutates_args=())
def fp32_weight_grad(grad_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """grad_out (B, O), x (B, I), any float dtype -> grad_outᵀ · x (O, I) in fp32."""
    return grad_out.float().t() @ x.float()


@fp32_weight_grad.register_fake
def _(grad_out, x):
    return grad_out.new_empty((grad_out.shape[1], x.shape[1]), dtype=torch.float32)


class _Fp32WeightGradLinear(torch.autograd.Function):
    """F.linear in bf16 (x, weight and bias cast as autocast casts them); ∂L/∂w and ∂L/∂b in
    fp32: x (B, I), weight (O, I) fp32 -> out (B, O) bf16."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor,  # type: ignore[override]
                bias: torch.Tensor | None, dtype: torch.dtype,
                weight_copy: torch.Tensor | None) -> torch.Tensor:
        # weight_copy: `weight` already in `dtype` (Bf16Weights), else it is cast here
        x16 = x.to(dtype)
        w16 = weight_copy if weight_copy is not None else weight.to(dtype)
        ctx.save_for_backward(x16, w16)
        return F.linear(x16, w16, None if bias is None else bias.to(dtype))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        x16, w16 = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out @ w16  # (B, I), bf16 as autocast's
        if ctx.needs_input_grad[1]:
            grad_w = fp32_weight_grad(grad_out, x16)  # (O, I) fp32
        if ctx.needs_input_grad[2]:
            grad_b = grad_out.float().sum(0)  # (O,) fp32
        return grad_x, grad_w, grad_b, None, None


class Fp32GradLinear(nn.Linear):
    """`nn.Linear`; under CPU bf16 autocast, training on at most `SMALL_BATCH` rows, the weight
    and bias gradients are computed in fp32 (see the module's docstring). `weight_bf16`: the
    weight's bf16 copy that the forward of that path uses instead of casting; set only for the
    duration of a training step's forward (`Bf16Weights`)."""

    weight_bf16: torch.Tensor | None = None

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # `input` as nn.Linear names it: torch.jit.trace's check compares value names
        # (see accel/conv_grad.py).
        if not self._fp32_grad_path(input):
            return super().forward(input)
        dtype = torch.get_autocast_dtype("cpu")
        with torch.autocast("cpu", enabled=False):
            copy = self.weight_bf16 if dtype == torch.bfloat16 else None
            return _Fp32WeightGradLinear.apply(input, self.weight, self.bias, dtype, copy)

    def _fp32_grad_path(self, input: torch.Tensor) -> bool:
        return (input.device.type == "cpu" and input.dim() == 2
                and input.shape[0] <= SMALL_BATCH and torch.is_grad_enabled()
                and self.weight.requires_grad and self.weight.dtype == torch.float32
                and torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16)


class Bf16Weights:
    """bf16 copies of the weights of a model's `Fp32GradLinear` layers (CPU, fp32), for one training
    step function: written by the update that changes the weights, so that no forward casts.

    `attach()` before the forward sets each layer's `weight_bf16`, first re-copying any weight
    that changed since its copy was written (its `_version`, which every in-place change
    bumps: loading a checkpoint, a manual edit); `detach()` after the forward clears them, so
    the model used any other way (evaluation, a copy of it) casts as usual; `written()` after an
    update that wrote every copy (`alexnet.accel.update_with_copies`).
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, Fp32GradLinear)
                       and m.weight.device.type == "cpu" and m.weight.dtype == torch.float32
                       and m.weight.requires_grad]  # a frozen layer keeps autocast's cast
        self.copies = [m.weight.detach().to(torch.bfloat16) for m in self.layers]
        self.versions = [m.weight._version for m in self.layers]

    def pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(fp32 weight, its bf16 copy) for every layer."""
        return [(m.weight, c) for m, c in zip(self.layers, self.copies, strict=True)]

    @torch.no_grad()
    def attach(self) -> None:
        for i, (m, c) in enumerate(zip(self.layers, self.copies, strict=True)):
            if m.weight._version != self.versions[i]:  # changed some other way: copy again
                c.copy_(m.weight)
                self.versions[i] = m.weight._version
            m.weight_bf16 = c

    def detach(self) -> None:
        for m in self.layers:
            m.weight_bf16 = None

    def written(self) -> None:
        self.versions = [m.weight._version for m in self.layers]
