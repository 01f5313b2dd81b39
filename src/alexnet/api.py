"""The Python API at the top of the package: `alexnet.create_model`, `alexnet.load`,
`alexnet.evaluate`. Each is the function the command line calls (`alexnet predict` loads with
`load`, `alexnet eval` scores with `evaluate`), so a notebook and a shell get the same numbers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from alexnet.errors import CheckpointError, ConfigError
from alexnet.evaluation.checkpoints_eval import evaluate_checkpoints
from alexnet.evaluation.predict import load_classifier
from alexnet.models import AlexNetBase, list_models
from alexnet.models import create_model as build_model
from alexnet.train.finetune import transfer
from alexnet.weights.checkpoint import open_checkpoint
from alexnet.weights.torchvision_weights import TORCHVISION

__all__ = ["create_model", "evaluate", "load"]

load = load_classifier  # alexnet.load: a checkpoint, run folder, HF folder, export, `torchvision`

Weights = str | os.PathLike | None


def create_model(name: str | None, *, weights: Weights = None, num_classes: int | None = None,
                 in_channels: int | None = None, **options: Any) -> AlexNetBase:
    """Build model `name` (`alexnet.list_models()`; None: the model `weights` hold), with
    `weights` loaded:

    - None: freshly initialised (`alexnet.models.create_model`; 1000 classes, 3 channels
      unless given);
    - "torchvision": torchvision's ImageNet weights (`AlexNet_Weights.IMAGENET1K_V1`, from the
      torch hub cache, downloaded when missing); `owt` only;
    - a path: a checkpoint, a run folder, a Hugging Face folder or a safetensors export of
      model `name`; its options (e.g. `image_size`) are kept unless given.

    With weights, `num_classes` / `in_channels` default to the weights' own; other values
    replace the last layer with a freshly initialised one (fc8, for new classes) or adapt conv1
    (1 <-> 3 channels), as fine-tuning does (`alexnet.train.finetune.transfer`).
    Returns the network in training mode, as `alexnet.models.create_model` does; for class
    names, preprocessing and `predict`, use `alexnet.load`.
    """
    if weights is None:
        if name is None:
            raise ConfigError("create_model needs a model name or weights; models: "
                              + ", ".join(list_models()))
        return build_model(name, num_classes=1000 if num_classes is None else num_classes,
                           in_channels=3 if in_channels is None else in_channels, **options)
    if str(weights) == TORCHVISION and name not in (None, "owt"):
        raise ConfigError(f"weights='torchvision' are torchvision's AlexNet, model 'owt' "
                          f"(64-192-384-256-256); create_model({name!r}) has other layers: "
                          "use create_model('owt', weights='torchvision')")
    stored = open_checkpoint(weights, device="cpu").model  # its own model, strictly loaded
    if name is not None and stored.config["name"] != name:
        raise CheckpointError(f"{weights} holds a {stored.config['name']!r} model, not "
                              f"{name!r}: create_model({stored.config['name']!r}, "
                              f"weights={str(weights)!r})")
    config = {**stored.config, **options}
    config["num_classes"] = stored.num_classes if num_classes is None else num_classes
    config["in_channels"] = (stored.config["in_channels"] if in_channels is None
                             else in_channels)
    if config == stored.config:
        return stored.train()
    model = build_model(**config)
    transfer(model, {"model": {"state_dict": stored.state_dict()}})
    return model


def evaluate(checkpoint: str | os.PathLike | Sequence[str | os.PathLike],
             data: str | os.PathLike | None = None, *, views: str = "ten",
             split: str = "val", batch_size: int = 128,
             device: str | torch.device | None = "auto", amp: bool = False,
             per_class: bool = False, confusion: bool = False,
             progress: bool = True) -> dict[str, Any]:
    """Top-1/top-5 error of a checkpoint (anything `alexnet.load` takes), or of the softmax
    average of several (§6's ensembles), on `data` (default: the checkpoint's own data; an
    image folder, an ILSVRC-2012 tree, a folder made by `alexnet prepare`, `fashion-mnist`,
    `cifar10` or `memory:NAME`), with §4.1's ten views (or "center"). What `alexnet eval`
    prints: {"checkpoints", "data", "split", "views", "images", "top1_err", "top5_err", ...}
    (`alexnet.evaluation.checkpoints_eval.evaluate_checkpoints`)."""
    if views not in ("center", "ten"):
        raise ConfigError(f"views must be 'center' or 'ten', got {views!r}")
    many = not isinstance(checkpoint, str | os.PathLike)
    specs = [str(c) for c in checkpoint] if many else [str(checkpoint)]
    return evaluate_checkpoints(specs, None if data is None else str(data), views=views,
                                batch_size=batch_size, device=device, amp=amp,
                                per_class=per_class, confusion=confusion, progress=progress,
                                split=split)
