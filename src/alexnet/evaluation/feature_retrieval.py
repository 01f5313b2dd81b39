"""`alexnet neighbors` (§6.1, Fig. 4 right): for query images, the stored images whose 4096-d
features (or another layer's, as the features file says) are nearest in Euclidean distance,
searched chunk by chunk so that a million stored vectors (8 GB in float16) need not fit in
memory (the features file is memory-mapped); or, with §6.1's binary codes in the file, nearest
in Hamming distance (`--hamming`, evaluation/codes.py).

Fig. 4 as a measurement (`alexnet retrieval`): precision@k, the fraction of each validation
image's k nearest training images that share its label, for the features and for the raw
pixels of the same images (§6.1: "If two images produce feature activation vectors with a small
Euclidean separation ... the higher levels of the neural network consider them to be similar",
while their pixels are not close in L2), and for the binary codes, with queries per second."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from alexnet.data.images import display_image, load_image
from alexnet.devices import resolve_device
from alexnet.errors import AlexNetError, ConfigError, DataError
from alexnet.evaluation.checkpoints import (
    data_bundle,
    weights_fingerprint,
)
from alexnet.evaluation.codes import CodeEncoder, hamming_neighbors, load_encoder, train_codes
from alexnet.evaluation.features import (
    encode_queries,
    feature_batches,
    load_features,
    stored_codes,
)
from alexnet.evaluation.predict import load_classifier
from alexnet.figures.neighbors import neighbors_figure
from alexnet.models.base import DEFAULT_LAYER, EMBED_LAYERS
from alexnet.weights.checkpoint import open_checkpoint

PRECISION_K = 6  # Fig. 4: six training images per query


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
                   progress: bool = True, hamming: int | bool = False) -> dict[str, Any]:
    """For each query image, the `k` stored images nearest by feature distance; with `figure`,
    draw them (re-reading the stored split once to fetch the neighbours' pixels). `hamming`:
    search the file's binary codes by Hamming distance instead (True: its longest codes; a
    number: the codes of that many bits)."""
    store = load_features(features_file)
    code_bits, code_entry = (stored_codes(store, None if hamming is True else int(hamming))
                             if hamming else (None, None))
    meta = store["meta"]
    ckpt = checkpoint or meta["checkpoint"]
    model = load_classifier(ckpt, device=device)
    if meta.get("weights") not in (None, weights_fingerprint(model.net)):
        raise DataError(f"{features_file} was made with {meta['checkpoint']} (model "
                        f"{meta.get('model', {}).get('name', '?')}), but the queries would go "
                        f"through {ckpt}, whose weights differ: distances between the two "
                        "mean nothing. Drop --checkpoint, or make the features again with "
                        f"`alexnet features {ckpt} --out FILE`")
    layer = meta.get("layer", DEFAULT_LAYER)  # files made before --layer hold fc7
    images = [load_image(str(q)) for q in queries]  # DataError names a bad file
    with torch.no_grad():
        x = model.transforms(images)  # (Q, C, s, s) on the model's device
        q = model.net.embed(x, layer).float().cpu()  # (Q, D): the stored vectors' layer
    if code_entry is not None:
        d, idx = hamming_neighbors(encode_queries(code_entry, q), code_entry["packed"], k,
                                   chunk_size=chunk_size)
        dist = d.float()  # (Q, k): bits that differ
    else:
        dist, idx = nearest_neighbors(q, store["features"], k, chunk_size=chunk_size,
                                      device=device, progress=progress)
    classes = list(meta.get("classes") or [])
    labels = [[classes[int(store["targets"][i])] if classes else str(int(store["targets"][i]))
               for i in row] for row in idx.tolist()]
    files = list(meta.get("files") or [])  # files made before names were stored: none
    result: dict[str, Any] = {
        "features": str(features_file), "split": meta.get("split"), "layer": layer,
        "distance": f"hamming ({code_bits} bits)" if code_bits else "euclidean",
        "queries": [{"file": str(f), "neighbors": [
            {"index": int(i), "distance": float(d), "label": lab,
             "file": files[i] if i < len(files) else f"#{i}"}
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
                                                .get(meta["split"], str(meta["split"])),
                                                by=(f"Hamming distance of {code_bits}-bit codes "
                                                    f"of {layer}" if code_bits else
                                                    f"Euclidean distance of {layer}")))
    return result


# ---------------------------------------------------------------- precision@k (Fig. 4 measured)


def label_precision(neighbour_labels: torch.Tensor, query_labels: torch.Tensor) -> float:
    """The fraction of neighbours (Q, k) whose label is their query's (Q,)."""
    return float((neighbour_labels == query_labels[:, None]).float().mean())


def euclidean_precision(queries: torch.Tensor, query_labels: torch.Tensor, base: torch.Tensor,
                        base_labels: torch.Tensor, k: int = PRECISION_K, *,
                        device: str | torch.device | None = "cpu") -> float:
    """Precision@k of `nearest_neighbors`: vectors (Q, D) against (N, D), read in chunks of
    about 256 MB whatever D is (raw pixels at 224: 150,528 dimensions)."""
    _, idx = nearest_neighbors(queries, base, k, chunk_size=chunk_rows(base.shape[1]),
                               device=device)
    return label_precision(base_labels[idx], query_labels)


def hamming_precision(query_codes: torch.Tensor, query_labels: torch.Tensor,
                      base_codes: torch.Tensor, base_labels: torch.Tensor,
                      k: int = PRECISION_K, *, seed: int = 0) -> float:
    """Precision@k of `hamming_neighbors` on packed codes. Short codes tie often at the k-th
    distance, and the search gives ties to the lower index: the stored set is searched in a
    seeded random order, so ties are not settled by the split's order (class by class)."""
    order = torch.randperm(len(base_codes), generator=torch.Generator().manual_seed(seed))
    _, idx = hamming_neighbors(query_codes, base_codes[order], k)
    return label_precision(base_labels[order][idx], query_labels)


def chunk_rows(dim: int, budget: int = 1 << 26) -> int:
    """Stored rows per search chunk: `budget` float32 values (256 MB) at most, 1 at least."""
    return max(1, min(65536, budget // max(1, dim)))


def spread_limit(loader: Any, limit: int | None) -> Any:
    """Keep `limit` images of an evaluation loader, evenly spread over its split (the splits
    are stored class by class: the first `limit` would be one or two classes)."""
    if limit is not None and limit < len(loader.indices):
        pick = torch.linspace(0, len(loader.indices) - 1, limit).round().long()
        loader.indices = loader.indices[pick]
    return loader


@torch.no_grad()
def split_vectors(model: nn.Module, loader: Iterable[Any], layer: str = DEFAULT_LAYER, *,
                  device: torch.device, progress: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pass over `loader`'s centre views: (features (N, D) at `layer`, pixels (N, C·s·s)
    as the network sees them, normalised, both float16; labels (N,))."""
    model.eval().to(device)
    feats, pixels, labels = [], [], []
    for x, y in tqdm(loader, desc=f"vectors ({layer} and pixels)", unit="batch",
                     disable=not progress, dynamic_ncols=True):
        x = x.to(device)  # (B, C, s, s)
        feats.append(model.embed(x, layer).float().cpu().half())
        pixels.append(torch.flatten(x, 1).float().cpu().half())
        labels.append(y.cpu())
    if not feats:
        raise DataError("no image came out of the loader: nothing to retrieve")
    return torch.cat(feats), torch.cat(pixels), torch.cat(labels)


def queries_per_second(search: Callable[[], object], queries: int, repeats: int = 3) -> float:
    """Queries answered per second by `search()` (which answers `queries` queries): the best
    of `repeats` timed runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        search()
        best = min(best, time.perf_counter() - start)
    return queries / max(best, 1e-9)


CodeSet = tuple[CodeEncoder, torch.Tensor, dict[str, Any] | None]  # encoder, stored codes, record


def train_code_sets(stored: torch.Tensor, bits: Sequence[int], *, seed: int = 0
                    ) -> dict[int, CodeSet]:
    """For each bit count, an auto-encoder trained on the stored vectors (N, D), the stored
    vectors' packed codes (N, bits/8) and its training record."""
    sets = {}
    for b in bits:
        encoder, record = train_codes(stored, b, seed=seed)
        sets[b] = (encoder, encoder.codes(stored), record)
    return sets


def code_search_report(stored: torch.Tensor, stored_labels: torch.Tensor,
                       queries: torch.Tensor, query_labels: torch.Tensor,
                       code_sets: dict[int, CodeSet], k: int = PRECISION_K, *, seed: int = 0,
                       repeats: int = 3) -> dict[str, Any]:
    """§6.1's proposal measured: precision@k and queries per second of the Euclidean search
    over the stored vectors (N, D), and of the Hamming search over each code set's packed
    codes (`train_code_sets`, or a features file's), by popcount (`queries_per_s`) and by ±1
    matrix product (`queries_per_s_matmul`); a Hamming query's time includes encoding it.
    CPU times: one process, the machine's threads; the best of `repeats` runs."""
    q = queries.float()  # (Q, D)
    euclidean = {
        "precision": euclidean_precision(q, query_labels, stored, stored_labels, k),
        "queries_per_s": queries_per_second(
            lambda: nearest_neighbors(q, stored, k, chunk_size=chunk_rows(stored.shape[1])),
            len(q), repeats),
        "bytes_per_image": stored.shape[1] * stored.element_size()}
    codes = {}
    for b, (encoder, base, record) in sorted(code_sets.items()):
        codes[b] = {
            "precision": hamming_precision(encoder.codes(q), query_labels, base, stored_labels,
                                           k, seed=seed),
            "queries_per_s": _hamming_speed(encoder, base, q, k, "popcount", repeats),
            "queries_per_s_matmul": _hamming_speed(encoder, base, q, k, "matmul", repeats),
            "bytes_per_image": base.shape[1], "training": record}
    return {"k": k, "stored": len(stored), "queries": len(q), "euclidean": euclidean,
            "codes": codes}


def _hamming_speed(encoder: CodeEncoder, base: torch.Tensor, queries: torch.Tensor, k: int,
                   method: str, repeats: int) -> float:
    """Queries/s of encoding query vectors (Q, D) and searching packed codes (N, W)."""
    def search() -> None:
        hamming_neighbors(encoder.codes(queries), base, k, method=method)

    return queries_per_second(search, len(queries), repeats)


def file_code_report(stored_file: str | Path, query_file: str | Path, k: int = PRECISION_K,
                     *, seed: int = 0, repeats: int = 3) -> dict[str, Any]:
    """`code_search_report` on two features files made with one checkpoint and layer: the
    stored set (with codes, `alexnet features --codes`) and the queries (e.g. its val split)."""
    store, queries = load_features(stored_file), load_features(query_file)
    for key in ("weights", "layer"):
        if store["meta"].get(key) != queries["meta"].get(key):
            raise DataError(f"{stored_file} and {query_file} differ in their {key} "
                            f"({store['meta'].get(key)} vs {queries['meta'].get(key)}): their "
                            "distances mean nothing")
    sets = {int(b): (load_encoder(c["encoder"]), c["packed"], None)
            for b, c in (store.get("codes") or {}).items()}
    if not sets:
        stored_codes(store)  # the DataError that says how to add codes
    return code_search_report(store["features"], store["targets"], queries["features"],
                              queries["targets"], sets, k, seed=seed, repeats=repeats)


def retrieval_precision(checkpoint: str, data: str | None = None, *, k: int = PRECISION_K,
                        layer: str = DEFAULT_LAYER, limit: int | None = None,
                        stored_limit: int | None = None, bits: Sequence[int] = (),
                        batch_size: int = 128, device: str | torch.device | None = "auto",
                        seed: int = 0, progress: bool = False, figure: str | Path | None = None,
                        examples: int = 5) -> dict[str, Any]:
    """Fig. 4 measured on a checkpoint's data (default: its own; normalised as its model was
    trained): for each validation image (`limit` of them, spread over the split), its k nearest
    training images (`stored_limit` of them; default all) by the features at `layer` and by the
    raw pixels of the same centre views; precision@k of each, with chance (the share of
    same-label pairs). `bits`: also §6.1's binary codes of those lengths (`code_search_report`).
    `figure`: Fig. 4 for `examples` queries spread over the split, drawn twice: neighbours by
    the features (`figure`) and by the pixels (its name + "-pixels").

    Memory: the stored pixels are N·C·s·s float16 values (5,000 images at 64 px: 123 MB;
    at 224 px, 300 KB per image: use `stored_limit`)."""
    if layer not in EMBED_LAYERS:
        raise ConfigError(f"unknown layer {layer!r}; choose one of {', '.join(EMBED_LAYERS)}")
    if k < 1:
        raise AlexNetError(f"k must be at least 1, got {k}")
    opened = open_checkpoint(checkpoint, data, device=device, need_data=True)
    model, mapping, dev = opened.model, opened.data, opened.device
    bundle = data_bundle(mapping, batch_size=batch_size, device=dev, seed=0,
                         normalization=opened.normalization)
    vectors = {split: split_vectors(model, spread_limit(feature_batches(bundle, split), n),
                                    layer, device=dev, progress=progress)
               for split, n in (("train", stored_limit), ("val", limit))}
    (tf, tp, ty), (vf, vp, vy) = vectors["train"], vectors["val"]
    counts = torch.bincount(ty, minlength=int(max(ty.max(), vy.max())) + 1).double()
    chance = float((counts[vy] / len(ty)).mean())  # a random stored image's label matching
    result = {"checkpoint": str(checkpoint), "data": mapping.get("source"), "layer": layer,
              "k": k, "queries": len(vy), "stored": len(ty), "dims": {
                  "features": tf.shape[1], "pixels": tp.shape[1]},
              "features": euclidean_precision(vf, vy, tf, ty, k, device=dev),
              "pixels": euclidean_precision(vp, vy, tp, ty, k, device=dev),
              "chance": chance}
    if bits:
        result["codes"] = code_search_report(tf, ty, vf, vy, train_code_sets(tf, bits, seed=seed),
                                             k, seed=seed)
    if figure is not None:
        names = list(bundle.classes)
        pick = torch.linspace(0, len(vy) - 1, max(1, min(examples, len(vy)))).round().long()
        result["figures"] = {
            by: str(fig4_figure(vq[pick], vy[pick], base, ty, vp[pick], tp, names, k, path,
                                getattr(bundle, "normalization", None), f"{what} of {layer}"
                                if by == "features" else what, dev))
            for by, vq, base, path, what in (
                ("features", vf, tf, Path(figure), "Euclidean distance"),
                ("pixels", vp, tp, Path(figure).with_name(f"{Path(figure).stem}-pixels.png"),
                 "Euclidean distance of raw pixels"))}
    return result


def fig4_figure(queries: torch.Tensor, query_labels: torch.Tensor, base: torch.Tensor,
                base_labels: torch.Tensor, query_pixels: torch.Tensor,
                base_pixels: torch.Tensor, classes: Sequence[str], k: int, path: Path,
                normalization: dict[str, torch.Tensor] | None, by: str,
                device: torch.device) -> Path:
    """Fig. 4 (right) from vectors already computed: each query's k nearest stored vectors
    (queries (Q, D) against base (N, D)), drawn from the stored centre views' pixels (Q, C·s·s)
    and (N, C·s·s), the normalisation undone."""
    dist, idx = nearest_neighbors(queries, base, k, chunk_size=chunk_rows(base.shape[1]),
                                  device=device)
    dims = base_pixels.shape[1]
    channels = 3 if dims % 3 == 0 and round((dims // 3) ** 0.5) ** 2 == dims // 3 else 1
    side = round((dims // channels) ** 0.5)

    def picture(row: torch.Tensor) -> torch.Tensor:
        return display_image(row.float().view(channels, side, side), normalization)

    def name(label: torch.Tensor) -> str:
        return classes[int(label)] if int(label) < len(classes) else str(int(label))

    return neighbors_figure(
        [picture(q) for q in query_pixels], [[picture(base_pixels[int(i)]) for i in row]
                                             for row in idx], path, distances=dist,
        labels=[[name(base_labels[int(i)]) for i in row] for row in idx],
        query_labels=[name(t) for t in query_labels], by=by)


def format_retrieval(result: dict[str, Any]) -> str:
    """The table `alexnet retrieval` prints."""
    k = result["k"]
    lines = [f"{result['checkpoint']}: {result['queries']:,} validation images against "
             f"{result['stored']:,} training images, precision@{k} (Fig. 4: k=6)",
             f"  {result['layer']} features ({result['dims']['features']:,}-d, Euclidean): "
             f"{result['features']:.3f}",
             f"  raw pixels ({result['dims']['pixels']:,}-d, Euclidean):   "
             f"{result['pixels']:.3f}",
             f"  chance (same label at random):        {result['chance']:.3f}"]
    if result.get("figures"):
        lines.append(f"  Fig. 4: {result['figures']['features']} (features), "
                     f"{result['figures']['pixels']} (pixels)")
    if result.get("codes"):
        lines.append(format_code_report(result["codes"], result["layer"]))
    return "\n".join(lines)


def format_code_report(report: dict[str, Any], layer: str = DEFAULT_LAYER) -> str:
    """`code_search_report`'s numbers, one line per search."""
    e = report["euclidean"]
    lines = [f"  search over {report['stored']:,} stored {layer} vectors, precision@"
             f"{report['k']} and queries/s ({report['queries']:,} queries):",
             f"    Euclidean:           {e['precision']:.3f}, {e['queries_per_s']:>9,.0f} "
             f"queries/s, {e['bytes_per_image']:,} bytes per image"]
    for b, c in report["codes"].items():
        lines.append(f"    {b:>4}-bit Hamming:    {c['precision']:.3f}, "
                     f"{c['queries_per_s']:>9,.0f} queries/s ({c['queries_per_s_matmul']:,.0f}"
                     f" by matrix product), {c['bytes_per_image']} bytes per image")
    return "\n".join(lines)
