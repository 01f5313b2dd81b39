"""Glue between checkpoints and the data part: class names, the data config a checkpoint was
trained with, and loaders built from it (through `alexnet.data`'s contract names only)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import torch

from alexnet.errors import AlexNetError, CheckpointError

DataBuilder = Callable[..., Any]  # (data mapping, *, batch_size, device, seed) -> DataBundle
_WNID = re.compile(r"^n\d{8}$")


def imagenet_names() -> list[str]:
    """The 1000 ILSVRC class names in sorted-wnid order (shipped with torchvision)."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return list(_IMAGENET_CATEGORIES)


def class_names(state: dict[str, Any] | None, num_classes: int) -> list[str]:
    """Human-readable names: the checkpoint's own, the ILSVRC names for 1000-class models whose
    classes are wnids (or unknown), else the class index as text."""
    stored = list((state or {}).get("classes") or [])
    if num_classes == 1000 and (not stored or all(_WNID.match(str(c)) for c in stored)):
        return imagenet_names()
    if len(stored) == num_classes:
        if any(_WNID.match(str(c)) for c in stored):  # a subset of ILSVRC stored as wnids
            from alexnet.data.sources import class_names as folder_names

            return folder_names([str(c) for c in stored])
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


def default_data_builder(mapping: dict[str, Any], *, batch_size: int, device: torch.device,
                         seed: int = 0) -> Any:
    """`alexnet.data.build_loaders(DataConfig.from_dict(mapping), ...)`."""
    try:
        from alexnet.data import DataConfig, build_loaders
    except ImportError as err:
        raise AlexNetError(f"the data part (alexnet.data) is not available: {err}; "
                           "reinstall the package (pip install -e .)") from err
    return build_loaders(DataConfig.from_dict(dict(mapping)), batch_size=batch_size,
                         device=device, seed=seed)


def data_functions() -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """(`alexnet.data.load_image`, `alexnet.data.preprocess_images`), with a clear error."""
    try:
        from alexnet.data import load_image, preprocess_images
    except ImportError as err:
        raise AlexNetError(f"the data part (alexnet.data) is not available: {err}; "
                           "reinstall the package (pip install -e .)") from err
    return load_image, preprocess_images


# §4.1's ten views are crops and their mirrors. A model trained on whole images (no data.crop,
# hence no random crops or flips) would see five copies of each image and five mirrors.
UNCROPPED_TEN_VIEWS = ("this model trained on whole images (no data.crop): its ten views are "
                       "five copies of each image and five mirror images it never saw in "
                       "training (§4.1's views are crops); centre views are the fair test")


def ten_views_unfair(preprocess: dict[str, Any] | None) -> bool:
    """True when a model with this saved/bundle `preprocess` trained without crops."""
    return (preprocess or {}).get("crop", 0) is None


def eval_batches(bundle: Any, views: str, limit: int | None = None) -> Any:
    """The bundle's evaluation loader for `views` ("center" or "ten"); `limit`: only the first
    `limit` images of the split."""
    if views not in ("center", "ten"):
        raise AlexNetError(f"views must be 'center' or 'ten', got {views!r}")
    if limit is not None and limit < 1:
        raise AlexNetError(f"limit must be a positive number of images, got {limit}")
    return bundle.eval_loader(views=views) if limit is None else \
        bundle.eval_loader(views=views, limit=limit)


def weights_fingerprint(model: torch.nn.Module) -> str:
    """A short hash of the first 1024 values of every parameter: tells two models' weights
    apart (e.g. a features file and the checkpoint its queries go through)."""
    import hashlib

    sample = torch.cat([p.detach().flatten()[:1024].float().cpu() for p in model.parameters()])
    return hashlib.sha1(sample.numpy().tobytes()).hexdigest()[:16]
