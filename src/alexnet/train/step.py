"""One training step (forward, loss, backward, §5's update), as the loop runs it and as
`alexnet bench train` times it: the same function, so the benchmark measures the loop's step."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from alexnet.accel import Bf16Weights, autocast, update_with_copies, use_cpu_kernels
from alexnet.models import PAPER_FAMILY
from alexnet.train.optim import PaperSGD

StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def make_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, *, amp: bool,
                    compile_optimizer: bool = False, cudagraphs: bool = False) -> StepFn:
    """`step(x, y) -> (loss, logits)`: x (B, C, H, W) already on the model's device (and in its
    memory format), y (B,) int64. bf16 autocast around the forward when `amp`
    (`alexnet.accel.autocast`); the update compiled into one fused loop when `compile_optimizer`
    (CPU); gradients set to None after the update, so they hold no memory between steps. No
    host synchronisation: `loss` (a 0-d tensor) and `logits` (B, classes) stay on the device.
    `cudagraphs`: mark each step's start for torch.compile's CUDA graphs (mode
    "reduce-overhead"), which may overwrite the previous step's outputs.

    On the CPU with `amp`, the paper family trains with the CPU fast path (`alexnet.accel`):
    its conv and fc layers swapped for ones with faster bf16 weight gradients, and, with the
    compiled `PaperSGD` update, bf16 copies of the fc weights that the update writes and the
    forward reads instead of casting them (`Bf16Weights`)."""
    plain = model
    for wrapper in ("_orig_mod", "module", "_orig_mod"):  # torch.compile(DDP(model))
        plain = getattr(plain, wrapper, plain)
    on_cpu = next(plain.parameters()).device.type == "cpu"
    fast_path = (amp and on_cpu and isinstance(getattr(plain, "config", None), dict)
                 and plain.config.get("name") in PAPER_FAMILY)  # where it was measured
    if fast_path:
        use_cpu_kernels(plain)
    copies, update = None, optimizer.step
    if amp and on_cpu and compile_optimizer and isinstance(optimizer, PaperSGD):
        copies = Bf16Weights(plain)  # of the fast path's fc layers, where it is on
        if copies.layers:
            update = update_with_copies(optimizer, copies)
        else:
            copies = None
    update = torch.compile(update) if compile_optimizer else update
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
        if copies is not None:
            copies.written()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach(), logits.detach()

    step.copies = copies  # type: ignore[attr-defined]  # the bf16 copies it keeps, or None
    return step
