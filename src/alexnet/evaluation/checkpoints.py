"""Glue between checkpoints and the data part: class names to show, the data config a
checkpoint was trained with, the loaders built from it, and facts about its preprocessing."""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

import torch

from alexnet.data import DataBundle, DataConfig, build_loaders
from alexnet.data.sources import class_names as folder_class_names
from alexnet.errors import CheckpointError

_WNID = re.compile(r"^n\d{8}$")


def imagenet_names() -> list[str]:
    """The 1000 ILSVRC class names in sorted-wnid order (shipped with torchvision)."""
    # imported here: torchvision takes seconds to import and only 1000-class models need it
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def display_names(state: dict[str, Any] | None, num_classes: int) -> list[str]:
    """Human-readable names of a checkpoint's (or a bundle's) classes: its own, the ILSVRC
    names for 1000-class models whose classes are wnids (or unknown), else the class index as
    text."""
    stored = list((state or {}).get("classes") or [])
    if num_classes == 1000 and (not stored or all(_WNID.match(str(c)) for c in stored)):
        return imagenet_names()
    if len(stored) == num_classes:
        if any(_WNID.match(str(c)) for c in stored):  # a subset of ILSVRC stored as wnids
            return folder_class_names([str(c) for c in stored])
        return [str(c) for c in stored]
    return [str(i) for i in range(num_classes)]


def data_mapping(state: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """The checkpoint's resolved `data:` config, with `source` replaced when given."""
    try:
        mapping = copy.deepcopy(dict(state["config"]["data"]))
    except (KeyError, TypeError) as err:
        raise CheckpointError("the checkpoint has no resolved data config (config.data); "
                              "it was not written by `alexnet train`") from err
    if source is not None:
        mapping["source"] = str(source)
    return mapping


def data_bundle(mapping: dict[str, Any], *, batch_size: int, device: torch.device | str,
                seed: int = 0) -> DataBundle:
    """The data part's loaders for a checkpoint's `data:` mapping (see `data_mapping`):
    `alexnet.data.build_loaders(DataConfig.from_dict(mapping), ...)`, one process."""
    return build_loaders(DataConfig.from_dict(dict(mapping)), batch_size=batch_size,
                         device=device, seed=seed)


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
