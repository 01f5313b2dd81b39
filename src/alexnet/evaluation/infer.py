"""Inference -> logits, and the thin layer of metrics over it: ten-view softmax averaging (§4.1),
ensembles that average several nets' softmax (§6: "averaging the predictions of five similar
CNNs"), top-k error, per-class accuracy and the confusion matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from alexnet.devices import resolve_device
from alexnet.errors import AlexNetError


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def over_views(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """`fn` on a batch (B, C, s, s) -> (B, ...), or on every view of (B, V, C, s, s) at once
    -> (B, V, ...)."""
    if x.dim() != 5:
        return fn(x)
    return fn(x.flatten(0, 1)).unflatten(0, x.shape[:2])


def infer_many(models: Sequence[nn.Module], loader: Iterable[Any], *,
               device: str | torch.device | None = None, amp: bool = False,
               progress: bool = True, desc: str = "eval"
               ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Logits of every model on one pass over `loader`, and the targets (all on the CPU).

    Batches are (x, y) with x (B, C, s, s) (centre views) or (B, V, C, s, s) (V views, e.g. the
    ten of §4.1); the logits are (N, classes) or (N, V, classes) accordingly.
    """
    device = resolve_device(device) if device is not None else next(
        models[0].parameters()).device
    for m in models:
        m.eval().to(device)
    outs: list[list[torch.Tensor]] = [[] for _ in models]
    targets: list[torch.Tensor] = []
    total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    bar = tqdm(loader, total=total, desc=desc, unit="batch", disable=not progress,
               dynamic_ncols=True)
    for x, y in bar:
        x = x.to(device, non_blocking=True)
        with _autocast(device, amp):
            for out, m in zip(outs, models, strict=True):
                out.append(over_views(m, x).float().cpu())  # (B, classes) or (B, V, classes)
        targets.append(y.cpu())
    bar.close()
    if not targets:
        raise AlexNetError("the evaluation data is empty: no batch came out of the loader; "
                           "check the data source and its validation split")
    return [torch.cat(o) for o in outs], torch.cat(targets)


def infer(model: nn.Module, loader: Iterable[Any], **kwargs: Any
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """`(logits, targets)` of one model over `loader` (see `infer_many`)."""
    logits, targets = infer_many([model], loader, **kwargs)
    return logits[0], targets


def average_views(logits: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, classes): the softmax, averaged over views when there are views.

    §4.1: "the network makes a prediction by extracting five 224×224 patches ... as well as their
    horizontal reflections, and averaging the predictions made by the network's softmax layer on
    the ten patches". Input (N, classes) or (N, V, classes).
    """
    probs = F.softmax(logits.float(), dim=-1)
    return probs.mean(dim=1) if probs.dim() == 3 else probs


def ensemble(probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """§6: the average of several nets' class probabilities, (N, classes) each."""
    if not probs:
        raise AlexNetError("an ensemble needs at least one model")
    shapes = {tuple(p.shape) for p in probs}
    if len(shapes) != 1:
        raise AlexNetError(f"ensemble members disagree on the output shape: {sorted(shapes)}; "
                           "all checkpoints must have the same classes and see the same images")
    return torch.stack(list(probs)).mean(dim=0)


def topk_error(scores: torch.Tensor, targets: torch.Tensor, k: Sequence[int] = (1, 5)
               ) -> dict[int, float]:
    """{k: fraction of rows whose target is not among the k highest scores} (logits or probs).

    With fewer classes than k every row counts as correct (the target is always in the top k).
    """
    if len(scores) != len(targets) or len(scores) == 0:
        raise AlexNetError(f"top-k error needs as many score rows as targets (> 0), got "
                           f"{len(scores)} and {len(targets)}")
    kmax = min(max(k), scores.shape[1])
    top = scores.topk(kmax, dim=1).indices  # (N, kmax)
    hit = top == targets[:, None].to(top.device)  # (N, kmax)
    return {kk: 1.0 - hit[:, :min(kk, kmax)].any(dim=1).float().mean().item() for kk in k}


def confusion_matrix(scores: torch.Tensor, targets: torch.Tensor, num_classes: int
                     ) -> torch.Tensor:
    """(classes, classes) int64 counts: row = true class, column = predicted (top-1) class."""
    pred = scores.argmax(dim=1) if scores.dim() == 2 else scores
    index = targets.long() * num_classes + pred.long()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes,
                                                                           num_classes)


def per_class_accuracy(scores: torch.Tensor, targets: torch.Tensor, num_classes: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(top-1 accuracy per class (NaN where a class has no image), images per class)."""
    cm = confusion_matrix(scores, targets, num_classes)
    counts = cm.sum(dim=1)
    acc = cm.diagonal().double() / counts.double()  # NaN for 0/0
    return acc, counts
