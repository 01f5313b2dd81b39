"""torch.hub entry points of this repository.

    model = torch.hub.load("OWNER/alexnet", "alexnet", weights="torchvision")  # from GitHub
    model = torch.hub.load("path/to/alexnet", "paper", source="local", num_classes=10)

`alexnet` builds the paper's network (§3), or with `weights` the model they hold (`torchvision`:
torchvision's ImageNet weights on `owt`; a checkpoint, a run folder, a `save_pretrained` folder or
a safetensors export: its own model). One entry per model name follows (`one_tower` for
`one-tower`), each `alexnet.create_model(name, weights=..., num_classes=..., **options)`. For class
names, preprocessing and `predict`, use `alexnet.load(path)`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

# torch.hub checks these modules can be imported before it runs an entry point
dependencies = ["torch", "torchvision", "numpy", "PIL", "yaml", "tqdm", "filelock"]

if importlib.util.find_spec("alexnet") is None:  # not installed: this repository's own source
    sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from alexnet.api import create_model  # noqa: E402  (after the path is set)


def alexnet(weights: str | None = None, *, name: str | None = None, **kwargs: Any) -> Any:
    """AlexNet: `name` (default: the paper's network, or the model `weights` hold), with
    `weights` (None, "torchvision", or a path) loaded; `num_classes`, `in_channels` and model
    options as in `alexnet.create_model`."""
    if name is None and weights is None:
        name = "paper"
    return create_model(name, weights=weights, **kwargs)


def paper(weights: str | None = None, **kwargs: Any) -> Any:
    """§3, Fig. 2: two towers, LRN, overlapping pooling, dropout."""
    return create_model("paper", weights=weights, **kwargs)


def original(weights: str | None = None, **kwargs: Any) -> Any:
    """The paper's network as the released 2012 code ran it (layers-145.cfg)."""
    return create_model("original", weights=weights, **kwargs)


def one_tower(weights: str | None = None, **kwargs: Any) -> Any:
    """`one-tower`: the paper's widths on one GPU (no groups)."""
    return create_model("one-tower", weights=weights, **kwargs)


def half(weights: str | None = None, **kwargs: Any) -> Any:
    """§6's one-GPU comparison net: half the kernels of conv1-4."""
    return create_model("half", weights=weights, **kwargs)


def owt(weights: str | None = None, **kwargs: Any) -> Any:
    """torchvision's "one weird trick" AlexNet; weights="torchvision" loads its ImageNet weights."""
    return create_model("owt", weights=weights, **kwargs)


def d2l(weights: str | None = None, **kwargs: Any) -> Any:
    """Dive into Deep Learning's single-tower AlexNet."""
    return create_model("d2l", weights=weights, **kwargs)


def cifar4(weights: str | None = None, **kwargs: Any) -> Any:
    """§3.1/§3.3's four-layer CIFAR-10 net (cuda-convnet's layers-conv-local-13pct.cfg)."""
    return create_model("cifar4", weights=weights, **kwargs)
