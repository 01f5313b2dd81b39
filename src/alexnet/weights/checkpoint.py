"""Checkpoints that survive a crash: atomic writes, safe loads, clear errors.

A checkpoint is a plain dict (see docs/ARCHITECTURE.md) that loads with
`torch.load(weights_only=True)`: tensors, numbers, strings, lists, tuples and dicts only.
Pretrained weights load as checkpoints too (`weights.torchvision_weights`): the word
`torchvision`, or a file holding a plain state dict in torchvision's AlexNet layout; and so
do the layouts that travel without pickle (`weights.portable`): a safetensors export and a
Hugging Face folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from alexnet.atomic import atomic_open
from alexnet.devices import resolve_device
from alexnet.errors import CheckpointError
from alexnet.models import PAPER_FAMILY, create_model
from alexnet.weights.portable import is_pretrained_folder, is_safetensors, read_checkpoint
from alexnet.weights.torchvision_weights import (
    TORCHVISION,
    checkpoint_from_state_dict,
    is_state_dict,
    torchvision_file,
)

FORMAT = "alexnet-checkpoint/1"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write `state` to `path` atomically (`alexnet.atomic`: temporary file, fsync, rename).

    A crash at any point leaves either the old file or the new one, never a torn file; a full
    disk is one `WriteError` naming the path.
    """
    path = Path(path)
    with atomic_open(path, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)
    return path


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder: its `best.pt` (best validation error), else
    `last.pt` (resuming reads `last.pt` by name), else a Hugging Face folder (config.json +
    model.safetensors: the folder itself); the word `torchvision`: torchvision's AlexNet
    weights in the torch hub cache, downloaded when missing (a path of that name: ./torchvision).
    """
    if isinstance(path, str) and path == TORCHVISION:
        return torchvision_file()
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        if is_pretrained_folder(path):
            return path
        raise CheckpointError(f"{path} is a folder without best.pt or last.pt, or config.json "
                              "and model.safetensors; pass a run folder made by `alexnet "
                              "train` or a folder made by `save_pretrained`")
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> dict[str, Any]:
    """Load a checkpoint written by `save_checkpoint`, with `weights_only=True`.

    `path` may also name pretrained weights (`resolve_checkpoint_path`): a plain state dict in
    torchvision's AlexNet layout comes back as an `owt` checkpoint without data of its own
    (`weights.torchvision_weights.checkpoint_from_state_dict`); a safetensors export or a
    Hugging Face folder as the checkpoint it was written from (`weights.portable`), without
    the training state (optimizer, epoch).
    """
    path = resolve_checkpoint_path(path)
    if path.is_dir() or is_safetensors(path):
        state = read_checkpoint(path)
        if map_location != "cpu":
            weights = state["model"]["state_dict"]
            state["model"]["state_dict"] = {k: v.to(map_location) for k, v in weights.items()}
        return {"format": FORMAT, **state}
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, empty, text, foreign pickle: all one answer
        size = path.stat().st_size if path.exists() else 0
        reason = str(err).splitlines()[0] if str(err) else "no details"
        raise CheckpointError(
            f"{path} ({size:,} bytes) could not be read as a checkpoint: it is truncated, "
            f"corrupt or not a PyTorch file ({type(err).__name__}: {reason})"
        ) from err
    if is_state_dict(state):  # pretrained weights; a wrong layout is one CheckpointError
        return {"format": FORMAT, **checkpoint_from_state_dict(state, path)}
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} is not an alexnet checkpoint: expected format {FORMAT!r}, found {found!r}"
        )
    return state


def load_model(
    path_or_state: str | os.PathLike | dict[str, Any],
    *,
    expect_model: str | None = None,
    expect_num_classes: int | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint holds and load its weights (in eval mode).

    Raises `CheckpointError` naming what was expected and what was found when the checkpoint
    holds another model or class count, or weights that do not fit.
    """
    state = (path_or_state if isinstance(path_or_state, dict)
             else load_checkpoint(path_or_state, map_location))
    where = "" if isinstance(path_or_state, dict) else f"{path_or_state}: "
    try:
        config = dict(state["model"]["config"])
        weights = state["model"]["state_dict"]
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{where}checkpoint has no model section") from err
    name = config.get("name")
    if expect_model is not None and name != expect_model:
        raise CheckpointError(f"{where}expected a {expect_model!r} model, "
                              f"the checkpoint holds {name!r}")
    classes = config.get("num_classes")
    if expect_num_classes is not None and classes != expect_num_classes:
        raise CheckpointError(f"{where}expected {expect_num_classes} classes, "
                              f"the checkpoint's model has {classes}")
    if name in PAPER_FAMILY and "dropout_scaling" not in config:
        # Written before the paper family had §4.2's dropout: trained with nn.Dropout.
        config["dropout_scaling"] = "train"
    model = create_model(**config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        details = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        first = details[0] if details else str(err)  # e.g. "size mismatch for fc8.weight: ..."
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise CheckpointError(f"{where}the stored weights do not fit the model the checkpoint "
                              f"names ({config}): {first}{more}") from err
    model.eval()
    return model, state


def open_checkpoint(spec: str | os.PathLike | dict[str, Any], *,
                    device: str | torch.device | None = "auto",
                    expect_num_classes: int | None = None
                    ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The one way a command opens weights: `spec` (a checkpoint file, a run folder, a
    Hugging Face folder, a safetensors export, `torchvision`, a torchvision .pth, or a
    checkpoint already loaded) -> its model in eval mode on `device` ("auto": CUDA when there
    is one), and the checkpoint (`load_checkpoint`'s dict)."""
    model, state = load_model(spec, expect_num_classes=expect_num_classes)
    return model.to(resolve_device(device)), state
