"""`alexnet prepare SRC DEST`: the paper's fixed-resolution dataset (§2: shorter side -> 256,
central 256×256) written once as JPEG bytes in the packed format (`packed.py`), with the
training set's mean image and RGB PCA (`stats.py`).

Parallel over CPU cores; unreadable files are skipped and listed in `skipped.txt`; every file
is written under a `.partial` name and renamed at the end, `meta.json` last, so an interrupted
run leaves nothing that looks finished; re-running on finished output does nothing.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from alexnet.data.augment import fit_square
from alexnet.data.packed import FORMAT, SPLITS, decode_jpegs, encode_jpeg, is_packed, read_meta
from alexnet.data.sources import image_tree, load_image
from alexnet.data.stats import StatsAccumulator
from alexnet.errors import DataError

CHUNK = 64  # images per task sent to a worker process


def _init_worker() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    torch.set_num_threads(1)


def _encode_chunk(paths: list[str], size: int, quality: int, with_stats: bool
                  ) -> tuple[list[tuple[bytes | None, str]], StatsAccumulator | None]:
    """Load, fit to size×size, JPEG-encode; statistics of the images as stored (decoded)."""
    out: list[tuple[bytes | None, str]] = []
    acc = StatsAccumulator() if with_stats else None
    for path in paths:
        try:
            image = fit_square(load_image(path), size)  # uint8 (3, size, size)
            data = encode_jpeg(image, quality=quality)
        except (DataError, RuntimeError, ValueError) as err:
            out.append((None, str(err).splitlines()[0] if str(err) else type(err).__name__))
            continue
        if acc is not None:
            acc.add(decode_jpegs(data)[None])
        out.append((data.numpy().tobytes(), ""))
    return out, acc


def prepare(src: str | Path, dest: str | Path, *, size: int = 256, quality: int = 90,
            workers: int | None = None, val_fraction: float = 0.1,
            progress: bool = True) -> dict[str, Any]:
    """Write SRC (an image tree, e.g. ILSVRC-2012) to DEST in the packed format.

    Returns the finished folder's meta (with "already": True when there was nothing to do).
    """
    src, dest = Path(src).resolve(), Path(dest)
    if not 1 <= quality <= 100:
        raise DataError(f"--quality must be in 1..100, got {quality}")
    if size < 1:
        raise DataError(f"--size must be a positive number of pixels, got {size}")
    if not 0 < val_fraction < 1:
        raise DataError(f"--val-fraction must be between 0 and 1, got {val_fraction}")
    if is_packed(dest):
        meta = read_meta(dest)
        asked = {"source": str(src), "size": size, "quality": quality,
                 "val_fraction": val_fraction}
        if all(meta.get(k, v) == v for k, v in asked.items()):
            return {**meta, "already": True}
        raise DataError(f"{dest} already holds a prepared dataset of {meta.get('source')} "
                        f"(size {meta.get('size')}, quality {meta.get('quality')}, val fraction "
                        f"{meta.get('val_fraction')}); choose another DEST or delete it")
    if is_packed(src):
        raise DataError(f"{src} is already a prepared dataset; train on it directly")
    source = image_tree(src, val_fraction)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the output folder {dest}: {err}; choose another "
                        "DEST") from err
    try:
        return _write(source, src, dest, size, quality, workers, val_fraction, progress)
    except BaseException:  # failed or interrupted: leave no half-written files behind
        for partial in dest.glob("*.partial"):
            partial.unlink(missing_ok=True)
        raise


def _write(source: Any, src: Path, dest: Path, size: int, quality: int, workers: int | None,
           val_fraction: float, progress: bool) -> dict[str, Any]:
    """The body of `prepare`: every file under a `.partial` name, renamed at the end."""
    workers = (os.cpu_count() or 1) if workers is None else max(0, int(workers))
    partials: list[tuple[Path, Path]] = []  # (partial, final)
    skipped: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    stats = StatsAccumulator()
    pool = ProcessPoolExecutor(workers, initializer=_init_worker) if workers > 1 else None
    try:
        for split, files in zip(SPLITS, (source.train, source.val), strict=True):
            starts = range(0, len(files), CHUNK)
            chunks = [files.paths[i:i + CHUNK] for i in starts]
            chunk_labels = [files.labels[i:i + CHUNK].tolist() for i in starts]
            args = (size, quality, split == "train")
            results = (pool.map(_encode_chunk, chunks, *[[a] * len(chunks) for a in args])
                       if pool else (_encode_chunk(c, *args) for c in chunks))
            offsets, labels = [0], []
            final = dest / f"{split}.bin"
            partial = final.with_name(final.name + ".partial")
            bar = tqdm(total=len(files), desc=f"prepare {split}", unit="img",
                       disable=not progress, dynamic_ncols=True)
            with partial.open("wb") as f:
                for chunk, targets, (items, acc) in zip(chunks, chunk_labels, results,
                                                        strict=True):
                    for path, label, (data, reason) in zip(chunk, targets, items, strict=True):
                        if data is None:
                            skipped.append((path, reason))
                            continue
                        f.write(data)
                        offsets.append(offsets[-1] + len(data))
                        labels.append(label)
                    if acc is not None:
                        stats.merge(acc)
                    bar.update(len(chunk))
            bar.close()
            partials.append((partial, final))
            for name, array in ((f"{split}.offsets.npy", np.asarray(offsets, dtype=np.int64)),
                                (f"{split}.labels.npy", np.asarray(labels, dtype=np.int64))):
                target = dest / name
                tmp = target.with_name(target.name + ".partial")
                with tmp.open("wb") as g:
                    np.save(g, array)
                partials.append((tmp, target))
            counts[split] = len(labels)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if counts.get("train", 0) == 0:
        reasons = "; ".join(f"{p}: {r}" for p, r in skipped[:3])
        raise DataError(f"no readable training image in {src} ({len(skipped)} skipped, e.g. "
                        f"{reasons})")
    tmp = dest / "stats.pt.partial"
    torch.save(stats.finish(), tmp)
    partials.append((tmp, dest / "stats.pt"))
    tmp = dest / "skipped.txt.partial"
    tmp.write_text("".join(f"{p}\t{r}\n" for p, r in skipped))
    partials.append((tmp, dest / "skipped.txt"))
    for partial, final in partials:
        partial.replace(final)
    meta = {"format": FORMAT, "source": str(src), "size": size, "quality": quality,
            "val_fraction": val_fraction,
            "classes": source.classes, "folders": source.info["folders"], "counts": counts,
            "skipped": len(skipped), "val_held_out": source.info["val_held_out"],
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    tmp = dest / "meta.json.partial"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(dest / "meta.json")  # last: the folder is finished
    return {**meta, "already": False, "skipped_files": skipped}
