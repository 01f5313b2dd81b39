"""What a data source is: its two splits (tensors in memory, or image files) and class names.
`sources.py` opens the shipped kinds, `memory.py` the tensors a user registers, `packed.py`
the folders `alexnet prepare` writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class MemorySplit:
    """A small dataset held as one tensor: images uint8 (N, C, H, W), labels int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class FileSplit:
    """Image files and their labels, read with `load_image`."""

    paths: list[str]
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Source:
    """A dataset's two splits, its class names and what kind of source it is."""

    kind: str  # memory | files | packed
    train: Any
    val: Any
    classes: list[str]
    stats: dict[str, torch.Tensor] = field(default_factory=dict)  # packed: mean, eigval, eigvec
    info: dict[str, Any] = field(default_factory=dict)
