"""`alexnet eval`: one checkpoint or an ensemble (§6) on a data source, centre or ten views."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from alexnet.errors import CheckpointError
from alexnet.evaluation.checkpoints import (
    data_bundle,
    display_names,
    normalization_key,
)
from alexnet.evaluation.evaluate import EvalResult, evaluate
from alexnet.evaluation.metrics import confusion_matrix, per_class_accuracy, topk_error
from alexnet.weights.checkpoint import open_checkpoint


def evaluate_checkpoints(checkpoints: Sequence[str], data: str | None = None, *,
                         views: str = "center", batch_size: int = 128,
                         device: str | torch.device | None = "auto", amp: bool = False,
                         per_class: bool = False, confusion: bool = False,
                         progress: bool = True, split: str = "val") -> dict[str, Any]:
    """Top-1/top-5 error of one checkpoint, or of the softmax average of several (§6), by
    `evaluate`.

    The data config is the first checkpoint's resolved `data:` with `source` = `data` (None
    keeps the checkpoint's source), loaded by `alexnet.data.build_loaders` and normalised as
    the checkpoint stored (`data.normalization`: what its model was trained with); `split`
    "train" scores the training images instead (centre views, unaugmented). Checkpoints
    that need another data config or normalisation (e.g. another mean image) get their own pass
    over the data; the images and targets must agree.
    """
    if not checkpoints:
        raise CheckpointError("give at least one checkpoint")
    opened = [open_checkpoint(p, data, device=device, need_data=True) for p in checkpoints]
    states = [o.state for o in opened]
    groups: dict[str, list[int]] = {}
    for i, o in enumerate(opened):
        key = repr(sorted(o.data.items())) + normalization_key(o.normalization)
        groups.setdefault(key, []).append(i)
    results: list[tuple[list[int], EvalResult]] = []
    targets: torch.Tensor | None = None
    classes: list[str] = []
    notes: list[str] = []
    for members in groups.values():
        first = opened[members[0]]
        bundle = data_bundle(first.data, batch_size=batch_size, device=first.device, seed=0,
                             normalization=first.normalization,
                             checkpoints=[states[i] for i in members])  # before statistics
        models = [opened[i].model for i in members]
        r = evaluate(models, bundle, views, split=split, amp=amp, progress=progress,
                     desc=f"eval {views} ({len(models)} model(s))")
        if targets is not None and not torch.equal(targets, r.targets):
            where = ", ".join(str(checkpoints[i]) for i in members)
            raise CheckpointError(f"{where} saw other images or labels than the other "
                                  "checkpoints; an ensemble needs one data config")
        targets = r.targets
        notes += [n for n in r.notes if n not in notes]
        classes = display_names({"classes": list(bundle.classes)}, bundle.num_classes)
        results.append((members, r))
    assert targets is not None
    if len(results) == 1:  # one data config: evaluate's numbers as they are
        combined, (top1, top5) = results[0][1].probs, (results[0][1].top1_err,
                                                       results[0][1].top5_err)
    else:  # §6's average over all members: each group's average weighted by its size
        combined = sum(len(m) * r.probs for m, r in results) / len(checkpoints)
        errs = topk_error(combined, targets)
        top1, top5 = errs[1], errs[5]
    result: dict[str, Any] = {
        "checkpoints": [str(c) for c in checkpoints], "data": data or opened[0].data["source"],
        "split": split, "views": views, "images": len(targets),
        "top1_err": top1, "top5_err": top5,
    }
    if notes:
        result["note"] = "; ".join(notes)
    expected = (states[0].get("pretrained") or {}).get("expected")
    if len(checkpoints) == 1 and expected:  # published errors of pretrained weights
        result["expected"] = {"from": states[0]["pretrained"].get("from", "the source"),
                              **expected}
    if len(checkpoints) > 1:
        member_errs: dict[int, dict[str, float]] = {}
        for members, r in results:
            if len(members) == 1:
                member_errs[members[0]] = {"top1_err": r.top1_err, "top5_err": r.top5_err}
            else:
                member_errs.update(zip(members, r.members, strict=True))
        result["members"] = [{"checkpoint": str(c), **member_errs[i]}
                             for i, c in enumerate(checkpoints)]
    num_classes = combined.shape[1]
    if per_class:
        acc, counts = per_class_accuracy(combined, targets, num_classes)
        result["per_class"] = [
            {"class": i, "name": classes[i], "images": int(n),
             "accuracy": None if math.isnan(a) else float(a)}
            for i, (a, n) in enumerate(zip(acc.tolist(), counts.tolist(), strict=True))]
    if confusion:
        result["confusion"] = confusion_matrix(combined, targets, num_classes).tolist()
        result["classes"] = classes
    return result


def format_result(result: dict[str, Any]) -> str:
    """Human-readable lines for `alexnet eval`."""
    n = len(result["checkpoints"])
    what = "1 model" if n == 1 else f"ensemble of {n} models (softmax averaged, §6)"
    lines = [f"{what}, {result['views']} view(s), {result['images']:,} images of "
             f"{result['data']}:",
             f"  top-1 error {result['top1_err']:.2%}   top-5 error {result['top5_err']:.2%}"]
    if "expected" in result:
        e = result["expected"]
        lines.append(f"  {e['from']} reports {e['top1_err']:.2%} / {e['top5_err']:.2%} "
                     "top-1/top-5 error on ILSVRC-2012 val (centre views)")
    for m in result.get("members", []):
        lines.append(f"  member {m['checkpoint']}: top-1 {m['top1_err']:.2%}, "
                     f"top-5 {m['top5_err']:.2%}")
    if "per_class" in result:
        lines.append("  per-class top-1 accuracy:")
        for row in result["per_class"]:
            acc = "n/a" if row["accuracy"] is None else f"{row['accuracy']:.2%}"
            lines.append(f"    {row['class']:>4} {row['name'][:30]:<30} {acc:>8} "
                         f"({row['images']} images)")
    if "confusion" in result:
        lines.append("  confusion matrix (rows: true class, columns: predicted):")
        for row in result["confusion"]:
            lines.append("    " + " ".join(f"{v:>5}" for v in row))
    if "confusion_png" in result:
        lines.append(f"  confusion matrix figure -> {result['confusion_png']}")
    if "note" in result:
        lines.append(f"  note: {result['note']}")
    return "\n".join(lines)
