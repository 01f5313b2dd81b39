"""`alexnet prepare SRC DEST`: the paper's fixed-resolution dataset (§2: shorter side -> 256,
central 256×256) written once as JPEG bytes in the packed format (`packed.py`), with the
training set's mean image and RGB PCA (`stats.py`).

Parallel over CPU cores; unreadable files are skipped and listed in `skipped.txt`. Every file
is written through `alexnet.atomic` as a temporary file and renamed at the end, `meta.json`
last, so an interrupted run leaves nothing that looks finished; re-running on finished output
does nothing. SIGTERM is handled as Ctrl-C: the worker processes are terminated and the
temporary files removed; workers whose parent was killed (SIGKILL) exit on their own, and a
rerun removes what the killed run left. DEST is locked: one `prepare` at a time.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock, Timeout
from tqdm import tqdm

from alexnet.atomic import atomic_open, atomic_path, remove_stale_temps, write_error
from alexnet.data.augment import fit_square
from alexnet.data.images import decode_jpegs, encode_jpeg, load_image
from alexnet.data.packed import FORMAT, SPLITS, is_packed, read_meta
from alexnet.data.sources import image_tree
from alexnet.data.stats import StatsAccumulator
from alexnet.errors import DataError

CHUNK = 64  # images per task sent to a worker process


def _exit_with(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:  # the parent was killed: do not linger as an orphan
            os._exit(1)


def _init_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "SIGPIPE"):  # the parent was killed: end silently when sending to it,
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # not with a BrokenPipeError traceback
    torch.set_num_threads(1)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread, so the same cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def _locked(dest: Path) -> Iterator[None]:
    lock = FileLock(dest / ".lock", timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise DataError(f"another `alexnet prepare` is writing {dest}; wait for it to "
                        "finish") from None
    except OSError as err:
        raise write_error(dest / ".lock", err) from None
    try:
        yield
    finally:
        (dest / ".lock").unlink(missing_ok=True)
        lock.release()


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


def _encode_task(task: tuple[list[str], int, int, bool]
                 ) -> tuple[list[tuple[bytes | None, str]], StatsAccumulator | None]:
    return _encode_chunk(*task)


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
    if dest.resolve() == src or src in dest.resolve().parents:
        raise DataError(f"DEST {dest} is inside SRC {src}: the output would be written into "
                        "the source tree (and read as images by the next run); choose a DEST "
                        "outside it")
    source = image_tree(src, val_fraction)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the output folder {dest}: {err}; choose another "
                        "DEST") from err
    with _locked(dest), _sigterm_as_interrupt():
        remove_stale_temps(dest)  # what a killed run left
        for old in dest.glob("*.partial"):  # the same, from earlier versions
            old.unlink(missing_ok=True)
        return _write(source, src, dest, size, quality, workers, val_fraction, progress)


def _terminate(pool: Any, workers: list[Any]) -> None:
    """Stop `pool` at once: no worker outlives an interrupted prepare. `Pool.terminate` can
    fail with "Cannot have cache with result_hander not alive" when its own threads finish
    first (a race in CPython's multiprocessing/pool.py); then the workers are stopped here."""
    try:
        pool.terminate()
        pool.join()
    except AssertionError:
        pass
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
        worker.join()


def _write(source: Any, src: Path, dest: Path, size: int, quality: int, workers: int | None,
           val_fraction: float, progress: bool) -> dict[str, Any]:
    """The body of `prepare`: every file written to a temporary name and renamed when all are
    done (`meta.json` last); on any failure or interrupt the temporary files are removed and
    the worker processes terminated."""
    workers = (os.cpu_count() or 1) if workers is None else max(0, int(workers))
    skipped: list[tuple[str, str]] = []
    counts: dict[str, int] = {}
    stats = StatsAccumulator()
    import torchvision.io  # noqa: F401  (imported once here: forked workers inherit it)

    others = set(multiprocessing.active_children())
    pool = (multiprocessing.Pool(workers, initializer=_init_worker, initargs=(os.getpid(),))
            if workers > 1 else None)
    pool_workers = [p for p in multiprocessing.active_children() if p not in others]
    try:
        with ExitStack() as outputs:  # each output renamed when the stack closes, in reverse
            meta_tmp = outputs.enter_context(atomic_path(dest / "meta.json"))  # renamed last
            for split, files in zip(SPLITS, (source.train, source.val), strict=True):
                starts = range(0, len(files), CHUNK)
                chunks = [files.paths[i:i + CHUNK] for i in starts]
                chunk_labels = [files.labels[i:i + CHUNK].tolist() for i in starts]
                tasks = [(c, size, quality, split == "train") for c in chunks]
                results = (pool.imap(_encode_task, tasks) if pool
                           else (_encode_task(t) for t in tasks))
                offsets, labels = [0], []
                bar = tqdm(total=len(files), desc=f"prepare {split}", unit="img",
                           disable=not progress, dynamic_ncols=True)
                f = outputs.enter_context(atomic_open(dest / f"{split}.bin", "wb"))
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
                for name, array in ((f"{split}.offsets.npy", np.asarray(offsets, dtype=np.int64)),
                                    (f"{split}.labels.npy", np.asarray(labels, dtype=np.int64))):
                    np.save(outputs.enter_context(atomic_open(dest / name, "wb")), array)
                counts[split] = len(labels)
            if counts.get("train", 0) == 0:
                reasons = "; ".join(f"{p}: {r}" for p, r in skipped[:3])
                raise DataError(f"no readable training image in {src} ({len(skipped)} skipped, "
                                f"e.g. {reasons})")
            torch.save(stats.finish(), outputs.enter_context(atomic_open(dest / "stats.pt")))
            outputs.enter_context(atomic_open(dest / "skipped.txt", "w")).write(
                "".join(f"{p}\t{r}\n" for p, r in skipped))
            meta = {"format": FORMAT, "source": str(src), "size": size, "quality": quality,
                    "val_fraction": val_fraction, "classes": source.classes,
                    "folders": source.info["folders"], "counts": counts,
                    "skipped": len(skipped), "val_held_out": source.info["val_held_out"],
                    "created": time.strftime("%Y-%m-%d %H:%M:%S")}
            meta_tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    except BaseException:
        if pool is not None:
            _terminate(pool, pool_workers)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return {**meta, "already": False, "skipped_files": skipped}
