"""`alexnet neighbors` (§6.1, Fig. 4 right): for query images, the stored images whose 4096-d
features (or another layer's, as the features file says) are nearest in Euclidean distance,
searched chunk by chunk so that a million stored vectors (8 GB in float16) need not fit in
memory (the features file is memory-mapped)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from alexnet.data.images import display_image, load_image
from alexnet.devices import resolve_device
from alexnet.errors import AlexNetError, DataError
from alexnet.evaluation.checkpoints import data_bundle, weights_fingerprint
from alexnet.evaluation.features import feature_batches, load_features
from alexnet.evaluation.predict import checkpoint_predictor
from alexnet.figures.neighbors import neighbors_figure
from alexnet.models.base import DEFAULT_LAYER


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
                           f"{base.shape[1]}: they come from different models or layers")
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
                found[pos + j] = display_image(x[j], normalization)
        pos += x.shape[0]
        if len(found) == len(wanted):
            break
    missing = [i for i in wanted if i not in found]
    if missing:
        raise DataError(f"images {missing[:5]} of the feature set were not found in the data "
                        f"({pos} images seen); the data changed since `alexnet features` ran")
    return torch.stack([found[int(i)] for i in indices.flatten().tolist()]).view(
        *indices.shape, *next(iter(found.values())).shape)


def find_neighbors(features_file: str | Path, queries: Sequence[str], *, k: int = 6,
                   checkpoint: str | None = None, figure: str | Path | None = None,
                   chunk_size: int = 65536, device: str | torch.device | None = "auto",
                   progress: bool = True) -> dict[str, Any]:
    """For each query image, the `k` stored images nearest by feature distance; with `figure`,
    draw them (re-reading the stored split once to fetch the neighbours' pixels)."""
    store = load_features(features_file)
    meta = store["meta"]
    ckpt = checkpoint or meta["checkpoint"]
    predictor = checkpoint_predictor(ckpt, device=device)
    if meta.get("weights") not in (None, weights_fingerprint(predictor.model)):
        raise DataError(f"{features_file} was made with {meta['checkpoint']} (model "
                        f"{meta.get('model', {}).get('name', '?')}), but the queries would go "
                        f"through {ckpt}, whose weights differ: distances between the two "
                        "mean nothing. Drop --checkpoint, or make the features again with "
                        f"`alexnet features {ckpt} --out FILE`")
    layer = meta.get("layer", DEFAULT_LAYER)  # files made before --layer hold fc7
    images = [load_image(str(q)) for q in queries]  # DataError names a bad file
    with torch.no_grad():
        x = predictor.transform(images).to(predictor.device)
        q = predictor.model.embed(x, layer).float().cpu()  # (Q, D): the stored vectors' layer
    dist, idx = nearest_neighbors(q, store["features"], k, chunk_size=chunk_size,
                                  device=device, progress=progress)
    classes = list(meta.get("classes") or [])
    labels = [[classes[int(store["targets"][i])] if classes else str(int(store["targets"][i]))
               for i in row] for row in idx.tolist()]
    result: dict[str, Any] = {
        "features": str(features_file), "split": meta.get("split"), "layer": layer,
        "queries": [{"file": str(f), "neighbors": [
            {"index": int(i), "distance": float(d), "label": lab}
            for i, d, lab in zip(ir, dr, lr, strict=True)]}
            for f, ir, dr, lr in zip(queries, idx.tolist(), dist.tolist(), labels, strict=True)]}
    if figure is not None:
        dev = resolve_device(device)
        bundle = data_bundle(
            meta["data"], batch_size=int(meta.get("batch_size", 128)), device=dev,
            seed=int(meta.get("seed", 0)), normalization=meta.get("normalization"))
        pics = gather_images(feature_batches(bundle, meta["split"]), idx,
                             getattr(bundle, "normalization", None))  # (Q, k, C, s, s)
        query_pics = images  # the query files as they are, uint8 (3, H, W)
        result["figure"] = str(neighbors_figure(query_pics, pics, figure, distances=dist,
                                                labels=labels,
                                                query_labels=[Path(f).name for f in queries],
                                                split={"train": "training", "val": "validation"}
                                                .get(meta["split"], str(meta["split"]))))
    return result
