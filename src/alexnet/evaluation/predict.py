"""`alexnet predict`: top-k classes with probabilities for image files, without the dataset.

Checkpoints carry the data part's `normalization` and `preprocess`, so an image goes
load_image -> preprocess_images(normalization, preprocess) -> model -> softmax (§4.1's ten views
on request). Pretrained weights (`torchvision`, a torchvision-layout .pth) are checkpoints too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from alexnet.checkpoint import load_checkpoint, load_model
from alexnet.data import load_image, preprocess_images
from alexnet.devices import resolve_device
from alexnet.errors import AlexNetError, CheckpointError
from alexnet.evaluation.checkpoints import UNCROPPED_TEN_VIEWS, display_names, ten_views_unfair
from alexnet.evaluation.metrics import average_views, over_views, top_classes
from alexnet.pretrained import TORCHVISION

Transform = Callable[[list[torch.Tensor]], torch.Tensor]  # uint8 (C,H,W) list -> float batch


@dataclass
class Predictor:
    """A model in eval mode, its class names, and the transform from uint8 images to its input
    ((B, C, s, s), or (B, V, C, s, s) for several views)."""

    model: nn.Module
    classes: list[str]
    transform: Transform
    device: torch.device
    source: str
    note: str = ""  # something the user should know about these predictions

    @torch.no_grad()
    def probabilities(self, images: list[torch.Tensor]) -> torch.Tensor:
        """Class probabilities (B, classes) of uint8 (C, H, W) images, views averaged."""
        x = self.transform(images).to(self.device)  # (B, C, s, s) or (B, V, C, s, s)
        return average_views(over_views(self.model, x).float()).cpu()


def checkpoint_predictor(checkpoint: str, *, views: str = "center",
                         device: str | torch.device | None = "auto") -> Predictor:
    """A predictor from a checkpoint (`alexnet.checkpoint.load_checkpoint`'s spec: a file, a
    run folder, `torchvision` or a torchvision-layout state dict), with its normalization and
    preprocessing."""
    state = load_checkpoint(checkpoint)
    model, _ = load_model(state)
    try:
        normalization = state["data"]["normalization"]
        preprocess = state["data"]["preprocess"]
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{checkpoint}: no data.normalization / data.preprocess section; "
                              "it was not written by `alexnet train`") from err
    dev = resolve_device(device)

    def transform(images: list[torch.Tensor]) -> torch.Tensor:
        return preprocess_images(images, normalization, preprocess, views)

    note = UNCROPPED_TEN_VIEWS if views == "ten" and ten_views_unfair(preprocess) else ""
    return Predictor(model.to(dev), display_names(state, model.num_classes), transform, dev,
                     str(checkpoint), note)


def torchvision_predictor(*, device: str | torch.device | None = "auto",
                          views: str = "center") -> Predictor:
    """`owt` with torchvision's IMAGENET1K_V1 weights (torch hub cache, downloaded when
    missing): `checkpoint_predictor("torchvision")`, torchvision's resize 256, centre crop 224
    and ImageNet mean/std through the loaders' transform (alexnet.pretrained)."""
    return checkpoint_predictor(TORCHVISION, views=views, device=device)


def predict_files(predictor: Predictor, paths: Sequence[str], *, topk: int = 5,
                  batch_size: int = 32) -> list[dict[str, Any]]:
    """One result per file, in order: `{"file", "predictions": [{"rank", "class", "name",
    "prob"}]}`, or `{"file", "error"}` for a file that cannot be read (the others still run)."""
    k = topk  # top_classes clips it to the number of classes
    results: list[dict[str, Any]] = [{"file": str(p)} for p in paths]
    pending: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        if not pending:
            return
        try:
            probs = predictor.probabilities([img for _, img in pending])  # (B, classes)
        except AlexNetError:  # one bad image in the batch: answer them one by one
            for i, img in pending:
                try:
                    _fill(results[i], predictor.probabilities([img])[0], k, predictor.classes)
                except AlexNetError as err:
                    results[i]["error"] = str(err)
        else:
            for (i, _), p in zip(pending, probs, strict=True):
                _fill(results[i], p, k, predictor.classes)
        pending.clear()

    for i, path in enumerate(paths):
        try:
            pending.append((i, load_image(str(path))))
        except AlexNetError as err:
            results[i]["error"] = str(err)
        except OSError as err:
            results[i]["error"] = f"cannot read {path}: {err}"
        if len(pending) >= batch_size:
            flush()
    flush()
    return results


def _fill(result: dict[str, Any], probs: torch.Tensor, k: int, classes: list[str]) -> None:
    p, idx = top_classes(probs, k)
    result["predictions"] = [{"rank": r + 1, "class": int(c), "name": classes[int(c)],
                              "prob": float(v)} for r, (v, c) in enumerate(zip(p, idx,
                                                                              strict=True))]


def format_predictions(results: list[dict[str, Any]]) -> str:
    """Human-readable lines for `alexnet predict`."""
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['file']}: error: {r['error']}")
            continue
        lines.append(f"{r['file']}:")
        lines += [f"  {p['rank']}. {p['prob']:7.2%}  {p['name']}" for p in r["predictions"]]
    return "\n".join(lines)
