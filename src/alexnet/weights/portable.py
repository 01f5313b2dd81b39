"""Checkpoints in the two layouts that travel without pickle: a safetensors file
(`alexnet export --format safetensors`) and a Hugging Face folder (`save_pretrained`:
`config.json` + `model.safetensors`).

Both hold the network's weights as safetensors tensors and, as JSON, what a checkpoint says
about them (`describe`): the model's config (`create_model(**model)` rebuilds it), the stored
classes, the normalisation the model was trained with (its mean and std as nested lists, a
per-channel (C, 1, 1) or §2's mean image (C, R, R): float32 values survive JSON exactly), the
preprocessing, the run's `data:` config, its validation metrics and where pretrained weights
came from. `read_checkpoint` turns either back into the ordinary checkpoint dict
(docs/ARCHITECTURE.md), so every command that opens a checkpoint opens these.

The export keeps the JSON in the file's metadata (strings only: one JSON string per entry); the
folder keeps it in `config.json`, and `model.safetensors` holds the weights alone with
Hugging Face's `{"format": "pt"}` metadata.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from alexnet.atomic import write_bytes, write_error, write_text
from alexnet.errors import AlexNetError, CheckpointError

FORMAT = "alexnet-safetensors/1"  # the `format` entry of both layouts
CONFIG_NAME = "config.json"  # Hugging Face's names for a model folder's files
WEIGHTS_NAME = "model.safetensors"
# A checkpoint's entries kept beside the weights; each is JSON in both layouts.
ENTRIES = ("model_config", "classes", "normalization", "preprocess", "data", "metrics",
           "pretrained")


def _safetensors() -> Any:
    """The `safetensors.torch` module, or one error saying how to install it."""
    try:
        import safetensors.torch
    except ImportError as err:
        raise AlexNetError("safetensors files need the `safetensors` package: "
                           "pip install safetensors") from err
    return safetensors.torch


def describe(state: dict[str, Any]) -> dict[str, Any]:
    """Everything a checkpoint says about its weights, as JSON-able values (see the module
    docstring); the weights themselves are not included."""
    data = state.get("data") or {}
    norm = data.get("normalization") or {}
    config = state.get("config") or {}
    return {
        "format": FORMAT,
        "model_config": dict(state["model"]["config"]),
        "classes": [str(c) for c in state.get("classes") or []],
        "normalization": {k: v.detach().float().cpu().tolist() for k, v in norm.items()},
        "preprocess": data.get("preprocess"),
        "data": config.get("data"),
        "metrics": state.get("metrics"),
        "pretrained": state.get("pretrained"),
    }


def checkpoint_from(info: dict[str, Any], state_dict: dict[str, torch.Tensor]
                    ) -> dict[str, Any]:
    """The checkpoint dict (without "format", which `weights.checkpoint` adds) of weights and
    their `describe` entries."""
    model = dict(info["model_config"])
    state: dict[str, Any] = {
        "model": {"config": model, "state_dict": state_dict},
        "classes": list(info.get("classes") or []),
        "config": {"data": info.get("data"), "model": dict(model)},
    }
    norm = info.get("normalization")
    if norm and info.get("preprocess"):
        state["data"] = {"normalization": {k: torch.tensor(v, dtype=torch.float32)
                                           for k, v in norm.items()},
                         "preprocess": dict(info["preprocess"])}
    for key in ("metrics", "pretrained"):
        if info.get(key):
            state[key] = info[key]
    return state


def is_safetensors(path: Path) -> bool:
    """True for a file in the safetensors layout: a little-endian 8-byte header length, then
    the JSON header."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return (len(head) == 9 and head[8:9] == b"{"
            and int.from_bytes(head[:8], "little") <= path.stat().st_size)


def is_pretrained_folder(path: Path) -> bool:
    """True for a folder in the Hugging Face layout (config.json + model.safetensors)."""
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    st = _safetensors()
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        return st.load_file(str(path)), metadata
    except Exception as err:  # SafetensorError, OSError: a truncated or foreign file
        raise CheckpointError(f"{path} could not be read as a safetensors file: it is "
                              f"truncated or corrupt ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else 'no details'})"
                              ) from err


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict of a safetensors export or a Hugging Face folder (its config.json
    and model.safetensors), without "format"."""
    path = Path(path)
    if path.is_dir():
        try:
            info = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CheckpointError(f"{path / CONFIG_NAME} could not be read as JSON: "
                                  f"{err}") from err
        where = path / CONFIG_NAME
        tensors, _ = _read_tensors(path / WEIGHTS_NAME)
    else:
        tensors, metadata = _read_tensors(path)
        where = path
        try:
            info = {k: json.loads(v) for k, v in metadata.items() if k in ENTRIES}
        except ValueError as err:
            raise CheckpointError(f"{path}: its metadata is not valid JSON ({err})") from err
    if not isinstance(info, dict) or not isinstance(info.get("model_config"), dict):
        raise CheckpointError(
            f"{where} does not say which model its weights belong to (no `model_config` "
            "entry): it was not written by `alexnet export --format safetensors` or "
            "`save_pretrained`")
    return checkpoint_from(info, tensors)


def write_safetensors(path: str | os.PathLike, state_dict: dict[str, torch.Tensor],
                      metadata: dict[str, str]) -> Path:
    """Write `state_dict` (contiguous CPU copies) with string `metadata`, atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    return write_bytes(path, _safetensors().save(tensors, metadata=metadata))


def _json(value: Any, what: str, indent: int | None = None) -> str:
    try:
        return json.dumps(value, indent=indent)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"the checkpoint's {what} cannot be written as JSON ({err}); "
                              "it holds something other than numbers, text, lists and "
                              "mappings") from err


def config_text(info: dict[str, Any]) -> str:
    """config.json's text: indented, but each normalisation tensor on one line (a mean image
    has C·R·R numbers)."""
    norm = info.get("normalization") or {}
    mark = "normalization-tensor-"
    text = _json({**info, "normalization": {k: mark + k for k in norm}}, "description", 2)
    for k, v in norm.items():
        text = text.replace(json.dumps(mark + k), json.dumps(v))
    return text + "\n"


def export_metadata(state: dict[str, Any]) -> dict[str, str]:
    """A safetensors export's metadata: `format`, then each `describe` entry as JSON."""
    info = describe(state)
    return {"format": FORMAT, **{k: _json(info[k], k) for k in ENTRIES}}


def save_pretrained(state: dict[str, Any], directory: str | os.PathLike) -> Path:
    """Write a checkpoint's weights and description as a Hugging Face folder: `config.json`
    (`describe`) and `model.safetensors`. Returns the folder."""
    directory = Path(directory)
    text = config_text(describe(state))  # before anything is written
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(directory, err) from err
    write_safetensors(directory / WEIGHTS_NAME, state["model"]["state_dict"], {"format": "pt"})
    write_text(directory / CONFIG_NAME, text)
    return directory
