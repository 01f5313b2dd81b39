"""The one evaluation path: top-1/top-5 error and loss of a model, or of several averaged
(§6), on a `DataBundle`'s centre or ten views (§4.1). `alexnet eval`, `alexnet report` and
the training loop's validation all call `evaluate`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from alexnet.accel.cpu import native_bf16
from alexnet.errors import AlexNetError
from alexnet.evaluation.checkpoints import UNCROPPED_TEN_VIEWS, ten_views_unfair
from alexnet.evaluation.metrics import average_views, confusion_matrix, ensemble, over_views

VIEWS = ("center", "ten")


@dataclass
class EvalResult:
    """What `evaluate` measured. Errors are fractions in [0, 1]."""

    views: str  # "center" | "ten"
    images: int  # images evaluated (summed over processes when `reduce` is given)
    loss: float  # mean cross-entropy of the (view-, model-averaged) probabilities
    top1_err: float
    top5_err: float
    probs: torch.Tensor | None  # (N, classes) on CPU, softmax averaged over views and models
    targets: torch.Tensor | None  # (N,) int64 on CPU
    confusion: torch.Tensor | None  # (classes, classes) int64 counts, rows true
    members: list[dict[str, float]] = field(default_factory=list)  # per model, when several
    notes: list[str] = field(default_factory=list)  # e.g. why ten views are unfair here


def _autocast(device: torch.device, amp: bool):
    """bf16 autocast when `amp`, where training uses it (accel/settings.py): on CUDA, and on CPUs
    with native bf16 (emulated bf16 is slower than fp32 there)."""
    if amp and (device.type == "cuda" or (device.type == "cpu" and native_bf16())):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def _forward(model: nn.Module, channels_last: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """`model`, fed channels-last input when asked (the layout training runs in)."""
    if not channels_last:
        return model
    return lambda x: model(x.contiguous(memory_format=torch.channels_last))


def _hits(scores: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(top-1 hits, top-5 hits) of a batch, as float64 tensors on the scores' device; with
    fewer than 5 classes every target is within the top 5."""
    top = scores.topk(min(5, scores.shape[1]), dim=1).indices  # (B, k)
    hit = top == y[:, None]
    return hit[:, 0].sum().double(), hit.any(1).sum().double()


@torch.no_grad()
def evaluate(models: nn.Module | Sequence[nn.Module], data: Any, views: str = "center",
             limit: int | None = None, *, split: str = "val", batch_size: int | None = None,
             amp: bool = False, channels_last: bool = False,
             reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
             keep_outputs: bool = True, progress: bool = False, desc: str = "eval",
             leave: bool = True) -> EvalResult:
    """Top-1/top-5 error and mean cross-entropy of `models` on `data` (a `DataBundle`):
    `data.eval_loader(views=views, split=split, batch_size=batch_size, limit=limit)`.

    Each model's softmax is averaged over the ten views (§4.1), then over the models (§6);
    errors count a hit when the target is among the k highest of those probabilities. One
    model on centre views is scored on its logits and its loss is `F.cross_entropy` of the
    logits (the same numbers); otherwise the loss is -log of the averaged probability of the
    target. The models are put in eval mode and must be on one device; batches go there.

    Totals are kept on the device (no host synchronisation per batch). `reduce`, when given,
    sums them over processes: it receives a float64 tensor [loss sum, top-1 hits, top-5 hits,
    images, then top-1 and top-5 hits of each model when there are several] and returns the
    sums. `keep_outputs=False` keeps no per-image output (`probs`, `targets`, `confusion` are
    None); with `reduce` they hold this process's images only. `progress`: a bar (on stderr,
    shown once the pass has taken a second; `leave=False` erases it at the end).
    """
    models = [models] if isinstance(models, nn.Module) else list(models)
    if not models:
        raise AlexNetError("evaluate needs at least one model")
    if views not in VIEWS:
        raise AlexNetError(f"views must be 'center' or 'ten', got {views!r}")
    if limit is not None and limit < 1:
        raise AlexNetError(f"limit must be a positive number of images, got {limit}")
    device = next(models[0].parameters()).device
    for m in models:
        m.eval()
    several = len(models) > 1
    loader = data.eval_loader(views=views, split=split, batch_size=batch_size, limit=limit)
    totals = torch.zeros(4 + 2 * len(models) * several, device=device, dtype=torch.float64)
    probs_out: list[torch.Tensor] = []
    targets_out: list[torch.Tensor] = []
    total = len(loader) if hasattr(loader, "__len__") else None
    bar = tqdm(loader, total=total, desc=desc, unit="batch", disable=not progress,
               dynamic_ncols=True, delay=1.0, leave=leave)
    with _autocast(device, amp):
        for x, y in bar:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            logits = [over_views(_forward(m, channels_last), x).float()
                      for m in models]  # (B, classes) or (B, V, classes) each
            if not several and logits[0].dim() == 2:  # one model, centre views
                scores = logits[0]
                loss = F.cross_entropy(scores, y, reduction="sum").double()
                probs = F.softmax(scores, dim=1) if keep_outputs else None
            else:
                member_probs = [average_views(lg) for lg in logits]  # (B, classes) each
                scores = probs = ensemble(member_probs)
                loss = F.nll_loss(probs.clamp_min(torch.finfo(probs.dtype).tiny).log(), y,
                                  reduction="sum").double()
            n = torch.full((), len(y), device=device, dtype=torch.float64)
            parts = [loss, *_hits(scores, y), n]
            if several:
                for p in member_probs:
                    parts += _hits(p, y)
            totals += torch.stack(parts)
            if keep_outputs:
                probs_out.append(probs.cpu())
                targets_out.append(y.cpu())
    bar.close()
    if reduce is not None:
        totals = reduce(totals)
    sums = totals.tolist()  # the one synchronisation
    loss_sum, ok1, ok5, n_images = sums[:4]
    if n_images == 0:
        raise AlexNetError("the evaluation data is empty: no batch came out of the loader; "
                           "check the data source and its validation split")
    notes = [UNCROPPED_TEN_VIEWS] if views == "ten" and ten_views_unfair(
        getattr(data, "preprocess", None)) else []
    members = [{"top1_err": 1 - sums[4 + 2 * i] / n_images,
                "top5_err": 1 - sums[5 + 2 * i] / n_images} for i in range(len(models))
               ] if several else []
    probs_all = torch.cat(probs_out) if keep_outputs and probs_out else None
    targets_all = torch.cat(targets_out) if keep_outputs and targets_out else None
    confusion = (confusion_matrix(probs_all, targets_all, probs_all.shape[1])
                 if probs_all is not None and targets_all is not None else None)
    return EvalResult(views=views, images=int(n_images), loss=loss_sum / n_images,
                      top1_err=1 - ok1 / n_images, top5_err=1 - ok5 / n_images,
                      probs=probs_all, targets=targets_all, confusion=confusion,
                      members=members, notes=notes)
