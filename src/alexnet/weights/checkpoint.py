"""Checkpoints that survive a crash: atomic writes, safe loads, clear errors.

A checkpoint is a plain dict (see docs/ARCHITECTURE.md) that loads with
`torch.load(weights_only=True)`: tensors, numbers, strings, lists, tuples and dicts only.
Pretrained weights load as checkpoints too (`weights.torchvision_weights`): the word
`torchvision`, or a file holding a plain state dict in torchvision's AlexNet layout; and so
do the layouts that travel without pickle (`weights.portable`): a safetensors export and a
Hugging Face folder.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
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
WNID = re.compile(r"^n\d{8}$")  # an ILSVRC class id, e.g. n01440764


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
    if config.get("init") == "xavier":
        # Written when the config recorded init_bias under xavier too (it zeroes every bias).
        config.pop("init_bias", None)
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


def data_mapping(state: dict[str, Any], source: str | None = None) -> dict[str, Any]:
    """The checkpoint's resolved `data:` config, with `source` replaced when given.

    A checkpoint without a source of its own (pretrained weights: `config.data.source` None)
    needs `source`; without it, one `CheckpointError` says so.
    """
    try:
        mapping = copy.deepcopy(dict(state["config"]["data"]))
    except (KeyError, TypeError) as err:
        raise CheckpointError("the checkpoint has no resolved data config (config.data); "
                              "it was not written by `alexnet train`") from err
    if source is not None:
        mapping["source"] = str(source)
    elif mapping.get("source") is None:
        raise CheckpointError(_no_source(state))
    return mapping


def _no_source(state: dict[str, Any]) -> str:
    origin = state.get("pretrained") or {}
    what = (f"came from pretrained weights ({origin.get('from', 'no name')}, "
            f"{origin.get('file', 'no file')})" if origin else "names no data source")
    classes = state.get("classes") or []
    wnids = len(classes) == 1000 and all(WNID.match(str(c)) for c in classes)
    need = ("an ILSVRC-2012-style folder (train/ and val/ with one folder per wnid) or a "
            "dataset made by `alexnet prepare` from one, whose classes are the 1000 ILSVRC-2012 "
            "wnids" if wnids else f"a dataset with the checkpoint's {len(classes)} classes")
    return f"the checkpoint {what} and has no data of its own: give --data DIR, {need}"


@dataclass
class Opened:
    """What `open_checkpoint` gives a command: the model (eval mode, on `device`), the
    checkpoint dict, the file it came from, and the data config to feed it (`data_mapping`)."""

    model: torch.nn.Module
    state: dict[str, Any]
    device: torch.device
    path: Path | None  # None: a checkpoint dict passed in
    data: dict[str, Any] | None  # None: no data asked for and none of its own

    @property
    def normalization(self) -> dict[str, torch.Tensor] | None:
        """The mean and std its model was trained with (`data.normalization`), which every
        command feeds it; None: the data's own statistics."""
        norm = (self.state.get("data") or {}).get("normalization")
        return dict(norm) if norm else None


def open_checkpoint(spec: str | os.PathLike | dict[str, Any], data: str | None = None, *,
                    device: str | torch.device | None = "auto", need_data: bool = False
                    ) -> Opened:
    """The one way a command opens weights: `spec` (a checkpoint file, a run folder, a
    Hugging Face folder, a safetensors export, `torchvision`, a torchvision .pth, or a
    checkpoint already loaded) -> `Opened`: its model in eval mode on `device` ("auto": CUDA
    when there is one), the checkpoint dict, and the data config to feed it: its own with the
    source `data` when given. `need_data`: a checkpoint without data of its own (pretrained
    weights) and no `data` is one `CheckpointError` saying what to give, before any work."""
    path = None if isinstance(spec, dict) else resolve_checkpoint_path(spec)
    state = spec if isinstance(spec, dict) else load_checkpoint(path)
    mapping = None
    if need_data or data is not None:
        mapping = data_mapping(state, data)
    elif ((state.get("config") or {}).get("data") or {}).get("source") is not None:
        mapping = data_mapping(state)
    model, _ = load_model(state)
    dev = resolve_device(device)
    return Opened(model.to(dev), state, dev, path, mapping)
