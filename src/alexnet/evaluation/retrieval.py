"""`alexnet features` and `alexnet neighbors`: §6.1's feature vectors of a dataset, saved to a
file, and for query images the stored images nearest in that space, drawn as Fig. 4 (right)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from alexnet.checkpoint import load_checkpoint, load_model, resolve_checkpoint_path
from alexnet.devices import resolve_device
from alexnet.errors import ConfigError, DataError
from alexnet.evaluation.checkpoints import (
    DataBuilder,
    class_names,
    data_mapping,
    default_data_builder,
    weights_fingerprint,
)
from alexnet.evaluation.features import (
    extract_features,
    feature_batches,
    gather_images,
    load_features,
    nearest_neighbors,
    save_features,
)
from alexnet.evaluation.predict import checkpoint_predictor
from alexnet.figures.neighbors import neighbors_figure


def make_features(checkpoint: str, out: str | Path, *, data: str | None = None,
                  split: str = "train", batch_size: int = 128,
                  device: str | torch.device | None = "auto",
                  build_data: DataBuilder | None = None, progress: bool = True
                  ) -> dict[str, Any]:
    """Features (N, 4096, float16) of a split of `data` (default: the checkpoint's source)."""
    source = resolve_checkpoint_path(checkpoint)
    if Path(out).resolve() == source.resolve():
        raise ConfigError(f"--out {out} is the checkpoint it reads ({source}); choose another "
                          "file name, e.g. features.pt")
    dev = resolve_device(device)
    state = load_checkpoint(source)
    mapping = data_mapping(state, data)
    bundle = (build_data or default_data_builder)(mapping, batch_size=batch_size, device=dev,
                                                  seed=0)
    model, _ = load_model(state, expect_num_classes=bundle.num_classes)
    feats, targets = extract_features(model, feature_batches(bundle, split), device=dev,
                                      progress=progress)
    meta = {"checkpoint": str(checkpoint), "model": dict(model.config),
            "weights": weights_fingerprint(model), "data": mapping, "split": split,
            "batch_size": batch_size, "seed": 0,
            "classes": class_names({"classes": list(bundle.classes)}, bundle.num_classes)}
    path = save_features(out, feats, targets, meta)
    return {"path": str(path), "images": len(feats), "dim": feats.shape[1], "split": split}


def find_neighbors(features_file: str | Path, queries: Sequence[str], *, k: int = 6,
                   checkpoint: str | None = None, figure: str | Path | None = None,
                   chunk_size: int = 65536, device: str | torch.device | None = "auto",
                   build_data: DataBuilder | None = None,
                   load_image: Callable[[str], torch.Tensor] | None = None,
                   preprocess_images: Callable[..., torch.Tensor] | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """For each query image, the `k` stored images nearest by feature distance; with `figure`,
    draw them (re-reading the stored split once to fetch the neighbours' pixels)."""
    from alexnet.evaluation.checkpoints import data_functions

    store = load_features(features_file)
    meta = store["meta"]
    ckpt = checkpoint or meta["checkpoint"]
    predictor = checkpoint_predictor(ckpt, device=device, preprocess_images=preprocess_images)
    if meta.get("weights") not in (None, weights_fingerprint(predictor.model)):
        raise DataError(f"{features_file} was made with {meta['checkpoint']} (model "
                        f"{meta.get('model', {}).get('name', '?')}), but the queries would go "
                        f"through {ckpt}, whose weights differ: distances between the two "
                        "mean nothing. Drop --checkpoint, or make the features again with "
                        f"`alexnet features {ckpt} --out FILE`")
    load = load_image or data_functions()[0]
    images = [load(str(q)) for q in queries]  # DataError names a bad file
    with torch.no_grad():
        x = predictor.transform(images).to(predictor.device)
        q = predictor.model.embed(x).float().cpu()  # (Q, 4096)
    dist, idx = nearest_neighbors(q, store["features"], k, chunk_size=chunk_size,
                                  device=device, progress=progress)
    classes = list(meta.get("classes") or [])
    labels = [[classes[int(store["targets"][i])] if classes else str(int(store["targets"][i]))
               for i in row] for row in idx.tolist()]
    result: dict[str, Any] = {
        "features": str(features_file), "split": meta.get("split"),
        "queries": [{"file": str(f), "neighbors": [
            {"index": int(i), "distance": float(d), "label": lab}
            for i, d, lab in zip(ir, dr, lr, strict=True)]}
            for f, ir, dr, lr in zip(queries, idx.tolist(), dist.tolist(), labels, strict=True)]}
    if figure is not None:
        dev = resolve_device(device)
        bundle = (build_data or default_data_builder)(
            meta["data"], batch_size=int(meta.get("batch_size", 128)), device=dev,
            seed=int(meta.get("seed", 0)))
        pics = gather_images(feature_batches(bundle, meta["split"]), idx,
                             getattr(bundle, "normalization", None))  # (Q, k, C, s, s)
        query_pics = images  # the query files as they are, uint8 (3, H, W)
        result["figure"] = str(neighbors_figure(query_pics, pics, figure, distances=dist,
                                                labels=labels,
                                                query_labels=[Path(f).name for f in queries],
                                                split={"train": "training", "val": "validation"}
                                                .get(meta["split"], str(meta["split"]))))
    return result
