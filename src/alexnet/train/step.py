"""One training step (forward, loss, backward, §5's update), as the loop runs it and as
`alexnet bench train` times it: the same function, so the benchmark measures the loop's step."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from alexnet.models.linear import Bf16Weights
from alexnet.train.accel import autocast
from alexnet.train.optim import PaperSGD

StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def make_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, *, amp: bool,
                    compile_optimizer: bool = False, cudagraphs: bool = False) -> StepFn:
    """`step(x, y) -> (loss, logits)`: x (B, C, H, W) already on the model's device (and in its
    memory format), y (B,) int64. bf16 autocast around the forward when `amp`
    (`alexnet.train.accel`); the update compiled into one fused loop when `compile_optimizer`
    (CPU); gradients set to None after the update, so they hold no memory between steps. No
    host synchronisation: `loss` (a 0-d tensor) and `logits` (B, classes) stay on the device.
    `cudagraphs`: mark each step's start for torch.compile's CUDA graphs (mode
    "reduce-overhead"), which may overwrite the previous step's outputs.

    With `amp` and the compiled `PaperSGD` update (CPU), the update also writes bf16 copies of
    the fc weights that the forward uses instead of casting them (`Bf16Weights`)."""
    copies, pairs = None, None
    if amp and compile_optimizer and isinstance(optimizer, PaperSGD):
        copies = Bf16Weights(model)
        optimizer.bf16_copies = pairs = copies.pairs()
    update = torch.compile(optimizer.step) if compile_optimizer else optimizer.step
    mark_step = getattr(torch.compiler, "cudagraph_mark_step_begin", None) if cudagraphs \
        else None

    def step(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if mark_step is not None:
            mark_step()
        if copies is not None:
            copies.attach()
        try:
            with autocast(x.device, amp):
                logits = model(x)  # (B, classes)
                loss = F.cross_entropy(logits, y)
        finally:
            if copies is not None:
                copies.detach()
        loss.backward()
        update()
        if copies is not None and optimizer.bf16_copies is pairs:
            copies.written()  # (else a later step function's copies were written, not ours)
        optimizer.zero_grad(set_to_none=True)
        return loss.detach(), logits.detach()

    return step
