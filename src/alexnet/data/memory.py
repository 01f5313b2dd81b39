"""In-memory data sources: images you already hold as tensors, trained on through the real data
part (statistics, pipeline, loaders, rank sharding, exact resume) with no files.

For tests, and for users who hold their images as tensors (e.g. in a notebook)::

    from alexnet.data.memory import register_tensors

    source = register_tensors("digits", train_x, train_y, val_x, val_y, classes=names)
    cfg = resolve_config({"data": {"source": source, "resize": 64}, ...})  # "memory:digits"
    train(cfg, "runs/digits")

Images are uint8 (N, C, H, W) with C = 1 or 3, labels integers in 0..K-1. A memory source is a
small dataset like Fashion-MNIST (no crop by default, per-channel mean; `data.channels`
defaults to the images' channels). The registry belongs to this process: a run on
`memory:<name>` resumes (or is evaluated) only where the same name is registered again, and
spawned processes (DDP ranks) register it themselves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch

from alexnet.data.splits import MemorySplit, Source
from alexnet.errors import DataError

PREFIX = "memory:"
_SOURCES: dict[str, Source] = {}


def is_memory(source: object) -> bool:
    """Does `source` (a `data.source` value) name an in-memory source?"""
    return isinstance(source, str) and source.startswith(PREFIX)


def _name(name: str) -> str:
    name = name[len(PREFIX):] if is_memory(name) else name
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"an in-memory source needs a non-empty name, got {name!r}")
    return name


def _split(what: str, images: torch.Tensor, labels: torch.Tensor | Sequence[int]) -> MemorySplit:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or images.shape[1] not in (1, 3) or 0 in images.shape:
        found = (f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor)
                 else type(images).__name__)
        raise DataError(f"{what} images: expected a uint8 tensor (N, C, H, W) with C = 1 or 3 "
                        f"and N, H, W > 0, got {found}")
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or len(labels) != len(images) or labels.is_floating_point() \
            or labels.is_complex() or labels.dtype == torch.bool:
        raise DataError(f"{what} labels: expected {len(images)} integer labels (one per image), "
                        f"got {labels.dtype} {tuple(labels.shape)}")
    return MemorySplit(images.detach().cpu().contiguous(), labels.detach().cpu().long())


def register_tensors(name: str, train_images: torch.Tensor,
                     train_labels: torch.Tensor | Sequence[int], val_images: torch.Tensor,
                     val_labels: torch.Tensor | Sequence[int],
                     classes: Sequence[str] | None = None) -> str:
    """Register two splits under `name` and return the `data.source` value, `memory:<name>`.

    Images uint8 (N, C, H, W), C = 1 or 3 (both splits alike); labels integers in
    0..len(classes)-1; `classes`: their names (None: "0", "1", ... up to the largest label).
    Registering a name again replaces what it held. Raises `DataError` naming what is wrong.
    """
    key = _name(name)
    train, val = _split("train", train_images, train_labels), _split("val", val_images,
                                                                     val_labels)
    if train.images.shape[1] != val.images.shape[1]:
        raise DataError(f"train images have {train.images.shape[1]} channels, val images "
                        f"{val.images.shape[1]}: expected the same")
    top = int(torch.cat([train.labels, val.labels]).max())
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(top + 1)]
    low = int(torch.cat([train.labels, val.labels]).min())
    if low < 0 or top >= len(names):
        raise DataError(f"labels range over {low}..{top}; expected 0..{len(names) - 1} "
                        f"({len(names)} classes)")
    if len(names) < 2:  # one class: every prediction right, the error meaningless
        raise DataError(f"{PREFIX}{key} has {len(names)} class; a classifier needs at least two")
    _SOURCES[key] = Source("memory", train, val, names, info={"name": PREFIX + key})
    return PREFIX + key


def unregister(name: str) -> None:
    """Forget `name` (`memory:<name>` or `<name>`); nothing happens when it is not registered."""
    _SOURCES.pop(_name(name), None)


@contextmanager
def registered(name: str, *args: torch.Tensor | Sequence[int] | Sequence[str],
               **kwargs: Sequence[str] | None) -> Iterator[str]:
    """`register_tensors(name, ...)` for the duration of a `with` block; on leaving it, `name`
    holds what it held before (or nothing)."""
    key = _name(name)
    before = _SOURCES.get(key)
    try:
        yield register_tensors(key, *args, **kwargs)  # type: ignore[arg-type]
    finally:
        if before is None:
            _SOURCES.pop(key, None)
        else:
            _SOURCES[key] = before


def open_memory(source: str) -> Source:
    """The `Source` registered as `source` (`memory:<name>`)."""
    key = _name(source)
    if key not in _SOURCES:
        known = ", ".join(PREFIX + k for k in sorted(_SOURCES)) or "none"
        raise DataError(f"no in-memory data source {PREFIX}{key} in this process (registered: "
                        f"{known}); register the tensors first with "
                        "alexnet.data.memory.register_tensors, or set data.source to a dataset "
                        "or a folder")
    return _SOURCES[key]


def channels(source: str) -> int | None:
    """The channels of the images registered as `source`; None when it is not registered."""
    found = _SOURCES.get(source[len(PREFIX):]) if is_memory(source) else None
    return None if found is None else int(found.train.images.shape[1])
