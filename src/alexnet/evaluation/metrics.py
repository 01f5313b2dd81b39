"""Metrics over network outputs: a model on every view of a batch, ten-view softmax averaging
(§4.1), ensembles that average several nets' softmax (§6: "averaging the predictions of five
similar CNNs"), top-k error, the top-k classes of a prediction, per-class accuracy and the
confusion matrix. `evaluate.py` runs them over a data set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from alexnet.errors import AlexNetError


@torch.no_grad()
def over_views(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """`fn` on a batch (B, C, s, s) -> (B, ...), or on every view of (B, V, C, s, s) at once
    -> (B, V, ...)."""
    if x.dim() != 5:
        return fn(x)
    return fn(x.flatten(0, 1)).unflatten(0, x.shape[:2])


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


def top_classes(probs: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities (N, k), class indices (N, k)) of the k most probable classes of each row
    of `probs` (N, classes), most probable first; k is clipped to 1..classes."""
    return probs.topk(max(1, min(k, probs.shape[-1])), dim=-1)


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
