"""Glue between checkpoints and the data part: class names to show, the data config a
checkpoint was trained with (`weights.checkpoint.data_mapping`), the loaders built from it, and
facts about its preprocessing."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch

from alexnet.data import DataBundle, DataConfig, build_loaders
from alexnet.data.sources import class_names as folder_class_names
from alexnet.errors import CheckpointError
from alexnet.weights.checkpoint import WNID
from alexnet.weights.torchvision_weights import torchvision_weights


def imagenet_names() -> list[str]:
    """The 1000 ILSVRC class names in sorted-wnid order (torchvision's weights'
    `meta["categories"]`)."""
    return list(torchvision_weights().meta["categories"])


def display_names(state: dict[str, Any] | None, num_classes: int) -> list[str]:
    """Human-readable names of a checkpoint's (or a bundle's) classes: its own, the ILSVRC
    names for 1000-class models whose classes are wnids (or unknown), else the class index as
    text."""
    stored = list((state or {}).get("classes") or [])
    if num_classes == 1000 and (not stored or all(WNID.match(str(c)) for c in stored)):
        return imagenet_names()
    if len(stored) == num_classes:
        if any(WNID.match(str(c)) for c in stored):  # a subset of ILSVRC stored as wnids
            return folder_class_names([str(c) for c in stored])
        return [str(c) for c in stored]
    return [str(i) for i in range(num_classes)]


def normalization_key(normalization: dict[str, torch.Tensor] | None) -> str:
    """A short fingerprint of a normalisation: checkpoints that share data and normalisation
    share one pass over the data."""
    if normalization is None:
        return "data statistics"
    h = hashlib.sha1()
    for k in sorted(normalization):
        t = normalization[k].detach().float().cpu().contiguous()
        h.update(f"{k}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def data_bundle(mapping: dict[str, Any], *, batch_size: int, device: torch.device | str,
                seed: int = 0, normalization: dict[str, torch.Tensor] | None = None,
                checkpoints: Sequence[dict[str, Any]] = ()) -> DataBundle:
    """The data part's loaders for a checkpoint's `data:` mapping (see `data_mapping`):
    `alexnet.data.build_loaders(DataConfig.from_dict(mapping), ...)`, one process.
    `normalization` (`Opened.normalization`) replaces the data's own mean and std.
    `checkpoints`: states whose classes the data must have (`check_classes`), checked as soon
    as the data's classes are known, before its statistics are computed."""
    source = str(mapping.get("source"))

    def check(classes: list[str]) -> None:
        for state in checkpoints:
            check_classes(state, classes, source)

    return build_loaders(DataConfig.from_dict(dict(mapping)), batch_size=batch_size,
                         device=device, seed=seed, normalization=normalization,
                         check_classes=check if checkpoints else None)


def check_classes(state: dict[str, Any], classes: Sequence[str], source: str) -> None:
    """The data must have the checkpoint's classes: a `CheckpointError` naming both counts; and
    where the checkpoint's classes are ILSVRC wnids (pretrained weights), the data's must be
    those wnids (or their names) in the same order, else the first one out of place."""
    num = int(state["model"]["config"].get("num_classes", 0))
    if len(classes) != num:
        hint = " (the 1000 ILSVRC-2012 wnids)" if num == 1000 else ""
        raise CheckpointError(f"expected {len(classes)} classes (those of the data "
                              f"{source}), the checkpoint's model has {num}: evaluate it on "
                              f"data with its classes{hint}")
    wnids = [str(c) for c in state.get("classes") or []]
    if len(wnids) != num or not all(WNID.match(c) for c in wnids):
        return
    names = folder_class_names(wnids)
    for i, (found, wnid, name) in enumerate(zip(classes, wnids, names, strict=True)):
        if str(found) not in (wnid, name):
            raise CheckpointError(
                f"the data {source} has other classes than the checkpoint: its class {i} is "
                f"{found!r}, the checkpoint's is {wnid} ({name}); give a folder with one "
                "sub-folder per wnid, as ILSVRC-2012's train/ and val/")


# §4.1's ten views are crops and their mirrors. A model trained on whole images (no data.crop,
# hence no random crops or flips) would see five copies of each image and five mirrors.
UNCROPPED_TEN_VIEWS = ("this model trained on whole images (no data.crop): its ten views are "
                       "five copies of each image and five mirror images it never saw in "
                       "training (§4.1's views are crops); centre views are the fair test")


def ten_views_unfair(preprocess: dict[str, Any] | None) -> bool:
    """True when a model with this saved/bundle `preprocess` trained without crops."""
    return (preprocess or {}).get("crop", 0) is None


def weights_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of the first 1024 values of every parameter: tells two models' weights
    apart (e.g. a features file and the checkpoint its queries go through)."""
    sample = torch.cat([p.detach().flatten()[:1024].float().cpu() for p in model.parameters()])
    return hashlib.sha1(sample.numpy().tobytes()).hexdigest()[:16]
