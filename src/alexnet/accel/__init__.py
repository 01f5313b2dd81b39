"""How a given machine computes the paper's network fastest, kept apart from what it computes
(models/): the speed-ups a training step uses, chosen per device (`settings.step_settings`),
and the CPU's own fast path, switched on in one place when a step is built
(`alexnet.train.step.make_train_step` calls `use_cpu_kernels` and `update_with_copies`):

- `cpu`: what the CPU offers (native bf16 matrix units; an allocator that keeps freed memory);
- `conv_grad.WindowGradConv2d`, `linear_grad.Fp32GradLinear`: `nn.Conv2d` / `nn.Linear` whose
  bf16 weight gradients on the CPU are computed where oneDNN's are slow (small maps, conv1's few
  channels; fc layers at small batches), swapped in for the model's own layers by class, so
  parameters, names, state dicts and `isinstance` checks stay as they were;
- `linear_grad.Bf16Weights` + `update_with_copies`: bf16 copies of the fc weights written by
  the compiled update, read by their forward instead of a cast in every step.

Measurements behind each choice: the modules' docstrings and benchmarks/README.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from alexnet.accel.conv_grad import WindowGradConv2d
from alexnet.accel.linear_grad import Bf16Weights, Fp32GradLinear
from alexnet.accel.settings import StepSettings, autocast, step_settings

__all__ = ["Bf16Weights", "StepSettings", "autocast", "step_settings", "update_with_copies",
           "use_cpu_kernels"]

# The layers the CPU fast path replaces (exact classes: a subclass keeps its own forward).
_SWAPS: dict[type[nn.Module], type[nn.Module]] = {nn.Conv2d: WindowGradConv2d,
                                                  nn.Linear: Fp32GradLinear}


def use_cpu_kernels(model: nn.Module) -> int:
    """Swap the CPU fast path's layers in for `model`'s `nn.Conv2d` and `nn.Linear` (in place,
    by class: the same parameters); returns how many. They take their own path only while
    training in bf16 on the CPU, and `nn.Conv2d`'s / `nn.Linear`'s everywhere else."""
    swapped = 0
    for module in model.modules():
        faster = _SWAPS.get(type(module))
        if faster is not None:
            module.__class__ = faster
            swapped += 1
    return swapped


def update_with_copies(optimizer: torch.optim.Optimizer, copies: Bf16Weights
                       ) -> Callable[[], Any]:
    """`optimizer.step()` followed by writing the bf16 copies of the weights it changed, as one
    function for torch.compile to fuse into the update's loop (a separate copy would read the
    67 MB of fc7's weight once more per step)."""
    weights, bf16 = [w for w, _ in copies.pairs()], [c for _, c in copies.pairs()]

    def update() -> None:
        optimizer.step()
        with torch.no_grad():
            torch._foreach_copy_(bf16, weights)

    return update
