"""§6.1: the 4096-d last hidden layer as an image descriptor: extracted for every image of a
split (`alexnet features`), saved to a file that `retrieval.py` searches memory-mapped. Other
layers on request (`AlexNetBase.embed`'s conv5, pool5, fc6; fc7 is §6.1's).

The file: `{"format": "alexnet-features/1", "features" (N, D) float16, "targets" (N,), "meta",
"codes"?}`. `codes` (optional, `--codes BITS`: §6.1's short binary codes, evaluation/codes.py)
maps the bit count, as text ("64"), to `{"packed": (N, BITS/8) uint8, "encoder": the encoder's
state}`, so that queries can be encoded and searched by Hamming distance. Files without it
(all made before it existed) load as before."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from alexnet.atomic import atomic_open
from alexnet.devices import resolve_device
from alexnet.errors import AlexNetError, ConfigError, DataError
from alexnet.evaluation.checkpoints import (
    data_bundle,
    display_names,
    weights_fingerprint,
)
from alexnet.evaluation.codes import encoder_state, load_encoder, train_codes
from alexnet.evaluation.metrics import over_views
from alexnet.models.base import DEFAULT_LAYER, EMBED_LAYERS
from alexnet.weights.checkpoint import open_checkpoint, resolve_checkpoint_path

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
                  meta: dict[str, Any], codes: dict[str, dict[str, Any]] | None = None
                  ) -> Path:
    """Write `{"format", "features" (N, D), "targets" (N,), "meta", "codes"?}` with
    torch.save (`codes`: see `make_codes`; left out when there are none)."""
    state = {"format": FORMAT, "features": features.contiguous(), "targets": targets,
             "meta": meta}
    if codes:
        state["codes"] = codes
    with atomic_open(path, "wb") as f:
        torch.save(state, f)
    return Path(path)


def make_codes(features: torch.Tensor, bits: Iterable[int], *, seed: int = 0
               ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """§6.1's binary codes of `features` (N, D), one auto-encoder per bit count, trained on
    these vectors (the stored set): ({"64": {"packed": (N, 8) uint8, "encoder": state}, ...},
    the training records)."""
    codes, records = {}, []
    for b in sorted(set(bits)):
        encoder, record = train_codes(features, b, seed=seed)
        packed = encoder.codes(features)  # (N, b/8) uint8
        codes[str(b)] = {"packed": packed, "encoder": encoder_state(encoder, record)}
        records.append(record)
    return codes, records


def stored_codes(store: dict[str, Any], bits: int | None = None) -> tuple[int, dict[str, Any]]:
    """(bit count, {"packed", "encoder"}) of a loaded features file: `bits`' codes, or the
    longest stored when `bits` is None. A `DataError` when the file has none or not those."""
    codes = store.get("codes") or {}
    if not codes:
        raise DataError("the features file has no binary codes: make it with `alexnet features "
                        "... --codes 64` (§6.1's short codes) to search by Hamming distance")
    if bits is None:
        bits = max(int(b) for b in codes)
    if str(bits) not in codes:
        raise DataError(f"the features file has {', '.join(sorted(codes, key=int))}-bit codes, "
                        f"not {bits}-bit ones")
    return bits, codes[str(bits)]


def encode_queries(entry: dict[str, Any], queries: torch.Tensor) -> torch.Tensor:
    """Packed codes (Q, BITS/8) of query vectors (Q, D) through a stored encoder."""
    return load_encoder(entry["encoder"]).codes(queries.float())


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


def image_names(loader: Any, prefix: str) -> list[str]:
    """A name for each image `loader` yields, in order: its file where the data are files,
    else `prefix` and its position in the split (in-memory and packed data have no names)."""
    indices = getattr(loader, "indices", None)
    split = getattr(getattr(loader, "fetcher", None), "split", None)
    if indices is None:
        return []
    paths = getattr(split, "paths", None)
    return [paths[i] if paths is not None else f"{prefix} image {i}" for i in indices.tolist()]


def default_features_path(checkpoint: str, layer: str, split: str) -> Path:
    """Where `alexnet features` writes without --out: next to the checkpoint (in a run folder,
    in it), named by layer and split; for `torchvision`, in the current folder."""
    name = f"features-{layer}-{split}.pt"
    given = Path(checkpoint)
    if given.is_dir():
        return given / name
    if given.is_file():
        return given.with_name(f"{given.stem}-{name}")
    return Path(f"{checkpoint}-{name}")


def make_features(checkpoint: str, out: str | Path | None = None, *, data: str | None = None,
                  split: str = "train", batch_size: int = 128, layer: str = DEFAULT_LAYER,
                  device: str | torch.device | None = "auto", progress: bool = True,
                  codes: Iterable[int] = ()) -> dict[str, Any]:
    """Features (N, D, float16) at `layer` of a split of `data` (default: the checkpoint's
    source, with any classes), its images normalised as the checkpoint's model was trained.
    `codes`: bit counts of §6.1's binary codes to add, each with an auto-encoder trained on
    these features (`make_codes`). `out` None: `default_features_path`."""
    if layer not in EMBED_LAYERS:
        raise ConfigError(f"unknown layer {layer!r}; choose one of {', '.join(EMBED_LAYERS)}")
    out = out if out is not None else default_features_path(checkpoint, layer, split)
    source = resolve_checkpoint_path(checkpoint)
    if Path(out).resolve() == source.resolve():
        raise ConfigError(f"--out {out} is the checkpoint it reads ({source}); choose another "
                          "file name, e.g. features.pt")
    opened = open_checkpoint(source, data, device=device, need_data=True)
    model, mapping, dev = opened.model, opened.data, opened.device
    # Features are descriptors of any images: the data's classes need not be the model's
    # (ImageNet weights on one's own photos); the stored targets are the data's labels.
    bundle = data_bundle(mapping, batch_size=batch_size, device=dev, seed=0,
                         normalization=opened.normalization)
    loader = feature_batches(bundle, split)
    feats, targets = extract_features(model, loader, device=dev, progress=progress, layer=layer)
    meta = {"files": image_names(loader, f"{mapping.get('source')} {split}"),
            "checkpoint": str(checkpoint), "model": dict(model.config),
            "weights": weights_fingerprint(model), "data": mapping, "split": split,
            "layer": layer, "normalization": bundle.normalization,
            "batch_size": batch_size, "seed": 0,
            "classes": display_names({"classes": list(bundle.classes)}, bundle.num_classes)}
    packed, records = make_codes(feats, codes) if codes else ({}, [])
    path = save_features(out, feats, targets, meta, packed)
    return {"path": str(path), "images": len(feats), "dim": feats.shape[1], "split": split,
            "layer": layer, "codes": records}


