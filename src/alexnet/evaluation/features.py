"""§6.1: the 4096-d last hidden layer as an image descriptor: extracted for every image of a
split (`alexnet features`), saved to a file that `retrieval.py` searches memory-mapped. Other
layers on request (`AlexNetBase.embed`'s conv5, pool5, fc6; fc7 is §6.1's)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from alexnet.atomic import atomic_open
from alexnet.checkpoint import load_checkpoint, load_model, resolve_checkpoint_path
from alexnet.devices import resolve_device
from alexnet.errors import AlexNetError, ConfigError, DataError
from alexnet.evaluation.checkpoints import (
    data_bundle,
    data_mapping,
    display_names,
    stored_normalization,
    weights_fingerprint,
)
from alexnet.evaluation.metrics import over_views
from alexnet.models.base import DEFAULT_LAYER, EMBED_LAYERS

FORMAT = "alexnet-features/1"


@torch.no_grad()
def extract_features(model: nn.Module, loader: Iterable[Any], *,
                     device: str | torch.device | None = None, progress: bool = True,
                     dtype: torch.dtype = torch.float16, layer: str = DEFAULT_LAYER
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """`model.embed(x, layer)` of every image of `loader`: features (N, D) in `dtype` (D = 4096
    for fc6/fc7), targets (N,). Batches of several views (B, V, C, s, s) are averaged over the
    views."""
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    model.eval().to(dev)
    feats, targets = [], []
    total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    for x, y in tqdm(loader, total=total, desc=f"features ({layer})", unit="batch",
                     disable=not progress, dynamic_ncols=True):
        f = over_views(partial(model.embed, layer=layer), x.to(dev))  # (B, D) or (B, V, D)
        if f.dim() == 3:
            f = f.mean(1)
        feats.append(f.float().cpu().to(dtype))
        targets.append(y.cpu())
    if not feats:
        raise DataError("no image came out of the loader: nothing to extract features from")
    return torch.cat(feats), torch.cat(targets)


def save_features(path: str | Path, features: torch.Tensor, targets: torch.Tensor,
                  meta: dict[str, Any]) -> Path:
    """Write `{"format", "features" (N, D), "targets" (N,), "meta"}` with torch.save."""
    with atomic_open(path, "wb") as f:
        torch.save({"format": FORMAT, "features": features.contiguous(), "targets": targets,
                    "meta": meta}, f)
    return Path(path)


def load_features(path: str | Path) -> dict[str, Any]:
    """Load a features file memory-mapped (the vectors are read chunk by chunk when searched)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"features file {path} does not exist; make it with `alexnet features`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:
        raise DataError(f"{path} could not be read as a features file ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}); it is truncated or "
                        "not made by `alexnet features`") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise DataError(f"{path} is not a features file: expected format {FORMAT!r}")
    return state


def feature_batches(bundle: Any, split: str) -> Iterable[Any]:
    """Unaugmented centre-view batches of the `train` or `val` split of `bundle`, in order."""
    if split not in ("train", "val"):
        raise AlexNetError(f"split must be 'train' or 'val', got {split!r}")
    return bundle.eval_loader(views="center", split=split)


def make_features(checkpoint: str, out: str | Path, *, data: str | None = None,
                  split: str = "train", batch_size: int = 128, layer: str = DEFAULT_LAYER,
                  device: str | torch.device | None = "auto", progress: bool = True
                  ) -> dict[str, Any]:
    """Features (N, D, float16) at `layer` of a split of `data` (default: the checkpoint's
    source, with any classes), its images normalised as the checkpoint's model was trained."""
    if layer not in EMBED_LAYERS:
        raise ConfigError(f"unknown layer {layer!r}; choose one of {', '.join(EMBED_LAYERS)}")
    source = resolve_checkpoint_path(checkpoint)
    if Path(out).resolve() == source.resolve():
        raise ConfigError(f"--out {out} is the checkpoint it reads ({source}); choose another "
                          "file name, e.g. features.pt")
    dev = resolve_device(device)
    state = load_checkpoint(source)
    mapping = data_mapping(state, data)
    normalization = stored_normalization(state)
    bundle = data_bundle(mapping, batch_size=batch_size, device=dev, seed=0,
                         normalization=normalization)
    # Features are descriptors of any images: the data's classes need not be the model's
    # (ImageNet weights on one's own photos); the stored targets are the data's labels.
    model, _ = load_model(state)
    feats, targets = extract_features(model, feature_batches(bundle, split), device=dev,
                                      progress=progress, layer=layer)
    meta = {"checkpoint": str(checkpoint), "model": dict(model.config),
            "weights": weights_fingerprint(model), "data": mapping, "split": split,
            "layer": layer, "normalization": bundle.normalization,
            "batch_size": batch_size, "seed": 0,
            "classes": display_names({"classes": list(bundle.classes)}, bundle.num_classes)}
    path = save_features(out, feats, targets, meta)
    return {"path": str(path), "images": len(feats), "dim": feats.shape[1], "split": split,
            "layer": layer}


