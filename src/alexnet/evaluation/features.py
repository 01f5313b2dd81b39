"""§6.1: the 4096-d last hidden layer as an image descriptor, and retrieval by Euclidean
distance between those vectors (Fig. 4, right), chunked so that a million stored vectors
(8 GB in float16) are searched without holding them in memory (the file is memory-mapped).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from alexnet.atomic import atomic_open
from alexnet.devices import resolve_device
from alexnet.errors import AlexNetError, DataError
from alexnet.evaluation.infer import over_views

FORMAT = "alexnet-features/1"


@torch.no_grad()
def extract_features(model: nn.Module, loader: Iterable[Any], *,
                     device: str | torch.device | None = None, progress: bool = True,
                     dtype: torch.dtype = torch.float16) -> tuple[torch.Tensor, torch.Tensor]:
    """`model.embed` of every image of `loader`: features (N, 4096) in `dtype`, targets (N,).
    Batches of several views (B, V, C, s, s) are averaged over the views."""
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    model.eval().to(dev)
    feats, targets = [], []
    total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    for x, y in tqdm(loader, total=total, desc="features", unit="batch", disable=not progress,
                     dynamic_ncols=True):
        f = over_views(model.embed, x.to(dev))  # (B, 4096) or (B, V, 4096)
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


@torch.no_grad()
def nearest_neighbors(queries: torch.Tensor, base: torch.Tensor, k: int = 6, *,
                      chunk_size: int = 65536, device: str | torch.device | None = "cpu",
                      progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` rows of `base` (N, D) nearest to each query (Q, D) in Euclidean distance.

    Returns (distances (Q, k) ascending, indices (Q, k)). `base` is read `chunk_size` rows at a
    time (float32 on `device`), so memory is O(Q·chunk + chunk·D), whatever N is. Candidates
    come from the fast expansion |q|² − 2q·b + |b|² on vectors shifted by the queries' mean
    (distances do not change; rounding does, far less); the best max(4k, k + 16) of them are
    re-ranked by exact distance.
    """
    n = base.shape[0]
    if n == 0:
        raise DataError("the feature set is empty: no neighbours to search")
    if queries.shape[1] != base.shape[1]:
        raise AlexNetError(f"query features have {queries.shape[1]} dimensions, the stored ones "
                           f"{base.shape[1]}: they come from different models")
    dev = resolve_device(device)
    if k < 1:
        raise AlexNetError(f"k must be at least 1, got {k}")
    k = min(k, n)
    m = min(max(4 * k, k + 16), n)  # candidates kept for the exact re-ranking
    q_raw = queries.to(dev, torch.float32)  # (Q, D)
    shift = q_raw.mean(0, keepdim=True)  # (1, D)
    q = q_raw - shift
    q2 = (q * q).sum(1, keepdim=True)  # (Q, 1)
    best_d = torch.full((len(q), 0), float("inf"), device=dev)
    best_i = torch.zeros((len(q), 0), dtype=torch.long, device=dev)
    starts = range(0, n, chunk_size)
    for lo in tqdm(starts, desc="neighbours", unit="chunk", disable=not progress):
        b = base[lo:lo + chunk_size].to(dev, torch.float32) - shift  # (c, D)
        d2 = q2 - 2.0 * q @ b.T + (b * b).sum(1)[None]  # (Q, c): |q|² - 2q·b + |b|²
        cd, ci = d2.topk(min(m, b.shape[0]), dim=1, largest=False)
        cand_d = torch.cat([best_d, cd], dim=1)
        cand_i = torch.cat([best_i, ci + lo], dim=1)
        best_d, pos = cand_d.topk(min(m, cand_d.shape[1]), dim=1, largest=False)
        best_i = cand_i.gather(1, pos)
    exact = (base[best_i.cpu().flatten()].to(dev, torch.float32).view(*best_i.shape, -1)
             - q_raw[:, None]).norm(dim=2)  # (Q, m)
    order = exact.argsort(dim=1, stable=True)[:, :k]
    return exact.gather(1, order).cpu(), best_i.gather(1, order).cpu()


def feature_batches(bundle: Any, split: str) -> Iterable[Any]:
    """Unaugmented centre-view batches of the `train` or `val` split of `bundle`, in order."""
    if split not in ("train", "val"):
        raise AlexNetError(f"split must be 'train' or 'val', got {split!r}")
    return bundle.eval_loader(views="center", split=split)


def gather_images(batches: Iterable[Any], indices: torch.Tensor,
                  normalization: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Images (len(indices), C, s, s) in [0, 1] at the given positions of the loader's order:
    one pass over the batches, the normalisation undone, each image min-max scaled for display."""
    wanted = {int(i): None for i in indices.flatten().tolist()}
    found: dict[int, torch.Tensor] = {}
    pos = 0
    for x, _ in batches:
        if x.dim() == 5:
            x = x[:, 0]
        for j in range(x.shape[0]):
            if pos + j in wanted:
                found[pos + j] = _display(x[j].detach().float().cpu(), normalization)
        pos += x.shape[0]
        if len(found) == len(wanted):
            break
    missing = [i for i in wanted if i not in found]
    if missing:
        raise DataError(f"images {missing[:5]} of the feature set were not found in the data "
                        f"({pos} images seen); the data changed since `alexnet features` ran")
    return torch.stack([found[int(i)] for i in indices.flatten().tolist()]).view(
        *indices.shape, *next(iter(found.values())).shape)


def _display(x: torch.Tensor, normalization: dict[str, torch.Tensor] | None) -> torch.Tensor:
    """A normalised (C, s, s) image back to [0, 1] for display."""
    if normalization:
        std, mean = normalization.get("std"), normalization.get("mean")
        if std is not None:
            x = x * _fit(std, x)
        if mean is not None:
            x = x + _fit(mean, x)
    lo, hi = x.amin(), x.amax()
    return (x - lo) / (hi - lo).clamp_min(1e-8)


def _fit(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (C,1,1) or (C,H,W) statistic brought to x's (C, s, s) (a mean image is centre-cropped)."""
    t = torch.as_tensor(t, dtype=torch.float32)
    if t.dim() == 3 and t.shape[-1] > 1 and t.shape[-2:] != x.shape[-2:]:
        h, w = t.shape[-2:]
        s0, s1 = x.shape[-2:]
        top, left = max((h - s0) // 2, 0), max((w - s1) // 2, 0)
        t = t[:, top:top + s0, left:left + s1]
        if t.shape[-2:] != x.shape[-2:]:
            t = t.mean(dim=(1, 2), keepdim=True)
    return t
