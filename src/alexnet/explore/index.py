"""The dataset side of the explorer: the images it offers (the validation split, as Fig. 4's
queries) and the images it searches (the training split, as Fig. 4's neighbours and the units'
dataset examples), and the one pass over the latter (`IndexJob`), run in a thread with a
progress count and cached beside the run (RUN/explore-cache/), so that it is computed once per
run and data.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from alexnet.atomic import save_with
from alexnet.data import DataConfig, load_image
from alexnet.data.sources import open_source
from alexnet.data.splits import FileSplit, MemorySplit
from alexnet.errors import AlexNetError, DataError
from alexnet.evaluation.checkpoints import normalization_key, weights_fingerprint
from alexnet.evaluation.codes import CodeEncoder, hamming_neighbors, train_codes
from alexnet.evaluation.feature_retrieval import nearest_neighbors
from alexnet.explore.analysis import Explorer, UnitIndex, index_batch
from alexnet.weights.checkpoint import data_mapping, resolve_checkpoint_path

CACHE_FORMAT = "alexnet-explore-index/1"
CODE_BITS = 64  # §6.1's short binary codes: 64 bits, 8 bytes per image (our choice of length)


class Dataset:
    """A data source's two splits as images the page can show: `samples` (validation images
    offered to analyse) and `store` (training images searched), each at most `limit` images
    spread evenly over the split (splits are stored class by class)."""

    def __init__(self, source: str, mapping: dict[str, Any], *, limit: int = 2000,
                 samples: int = 500) -> None:
        cfg = DataConfig.from_dict({**mapping, "source": source}).resolved()
        opened = open_source(str(cfg.source), cfg.root or ".", cfg.val_fraction)
        self.name = str(source)
        self.classes = list(opened.classes)
        self.val, self.train = opened.val, opened.train
        self.samples = _spread(len(self.val), samples)
        self.store = _spread(len(self.train), limit)
        if not self.samples and not self.store:
            raise DataError(f"the data {source} has no images")

    def image(self, split: str, i: int) -> torch.Tensor:
        """uint8 (C, H, W) of the i-th sample (`val`) or stored image (`train`)."""
        part, picks = (self.val, self.samples) if split == "val" else (self.train, self.store)
        if not 0 <= i < len(picks):
            raise IndexError(f"no image {i}: the {split} list has {len(picks)}")
        j = picks[i]
        if isinstance(part, MemorySplit):
            return part.images[j]
        if isinstance(part, FileSplit):
            return load_image(part.paths[j])
        return part.decode(j)  # a prepared folder (PackedSplit)

    def label(self, split: str, i: int) -> str:
        part, picks = (self.val, self.samples) if split == "val" else (self.train, self.store)
        c = int(part.labels[picks[i]])
        return self.classes[c] if c < len(self.classes) else str(c)

    def key(self) -> str:
        """What identifies these stored images: the source (absolute when a folder) and picks."""
        where = Path(self.name)
        name = str(where.resolve()) if where.exists() else self.name
        return f"{name}|{len(self.train)}|{len(self.store)}"


def _spread(n: int, limit: int) -> list[int]:
    if n <= limit:
        return list(range(n))
    return torch.linspace(0, n - 1, limit).round().long().tolist()


def open_dataset(state: dict[str, Any], data: str | None, *, limit: int = 2000
                 ) -> tuple[Dataset | None, str]:
    """(the dataset, "") for `--data` or the source of the checkpoint `state`, or (None, why
    not): the explorer still works on uploaded images without one."""
    try:
        mapping = data_mapping(state, data)
        return Dataset(str(mapping["source"]), mapping, limit=limit), ""
    except AlexNetError as err:
        if data is not None:
            raise
        return None, f"no dataset: {err}"


def cache_folder(checkpoint: str) -> Path:
    """RUN/explore-cache for a run folder; beside the file for a checkpoint file."""
    path = resolve_checkpoint_path(checkpoint)
    return path.parent / "explore-cache"


class IndexJob:
    """The one pass over the stored images for one model (`analysis.index_batch`), started
    on request in a thread; `status()` says how far it is. Loaded from, then saved to,
    CACHE/<key>.pt."""

    def __init__(self, ex: Explorer, dataset: Dataset, cache: Path | None,
                 lock: threading.Lock, batch_size: int = 32) -> None:
        self.ex, self.dataset, self.lock, self.batch_size = ex, dataset, lock, batch_size
        h = hashlib.sha1(f"{CACHE_FORMAT}|{weights_fingerprint(ex.model)}|"
                         f"{normalization_key(ex.normalization)}|{ex.preprocess}|"
                         f"{dataset.key()}".encode())
        self.path = cache / f"{h.hexdigest()[:16]}.pt" if cache is not None else None
        self.state = "idle"
        self.done, self.total = 0, len(dataset.store)
        self.message = ""
        self.result: dict[str, Any] | None = None
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "done": self.done, "total": self.total,
                "message": self.message}

    def start(self) -> dict[str, Any]:
        """Start the pass unless it runs or ran; a cached result is loaded at once."""
        with self._guard:
            if self.state in ("running", "ready"):
                return self.status()
            if self.path is not None and self.path.is_file():
                try:
                    self.result = _check_cache(torch.load(self.path, map_location="cpu",
                                                          weights_only=True))
                    self.state, self.done, self.message = "ready", self.total, "from the cache"
                    return self.status()
                except Exception as err:  # a torn or foreign file: compute it again
                    self.message = f"cache {self.path.name} unreadable ({type(err).__name__})"
            self.state, self.done = "running", 0
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name="alexnet-explore-index")
            self._thread.start()
            return self.status()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status()

    def _batches(self):
        n = len(self.dataset.store)
        for lo in range(0, n, self.batch_size):
            yield [self.dataset.image("train", i) for i in range(lo, min(n, lo + self.batch_size))]

    def _run(self) -> None:
        start = time.perf_counter()
        bar = tqdm(total=self.total, desc="explore: dataset pass", unit="img", dynamic_ncols=True)

        def advance(n: int) -> None:
            self.done += n
            bar.update(n)

        try:
            index = UnitIndex()
            for images in self._batches():
                with self.lock:  # per batch: the page's requests are answered in between
                    index_batch(self.ex, images, index)
                advance(len(images))
            if index.seen == 0:
                raise DataError("the dataset has no training images to search")
            result = index.state()
            result["format"] = CACHE_FORMAT
            result["codes"] = _codes(result["features"])
            self.result = result
            self.message = f"{self.total:,} images in {time.perf_counter() - start:.1f} s"
            if self.path is not None:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    save_with(self.path, lambda f: torch.save(result, f))
                except (AlexNetError, OSError) as err:
                    self.message += f"; not cached ({err})"
            self.state = "ready"
        except Exception as err:  # shown in the page; the server keeps serving
            self.state, self.message = "error", f"{type(err).__name__}: {err}"
        finally:
            bar.close()

    def ready(self) -> dict[str, Any]:
        if self.result is None:
            raise AlexNetError("the dataset pass has not run yet: start it (Units or "
                               "Neighbours) and wait for its progress bar")
        return self.result


def _codes(features: torch.Tensor) -> dict[str, Any] | None:
    """§6.1's binary codes of the stored fc7 vectors: the auto-encoder (evaluation/codes.py)
    and the packed codes, or None for fewer than 2 images."""
    if len(features) < 2:
        return None
    encoder, record = train_codes(features.float(), CODE_BITS, epochs=20)
    return {"bits": CODE_BITS, "packed": encoder.codes(features.float()),
            "state_dict": encoder.state_dict(), "dim": int(features.shape[1]),
            "pca_dims": int(record["pca_dims"])}


def _check_cache(state: Any) -> dict[str, Any]:
    if not isinstance(state, dict) or state.get("format") != CACHE_FORMAT:
        raise DataError("not an explorer index")
    return state


def neighbours(result: dict[str, Any], query: torch.Tensor, k: int = 6, by: str = "fc7"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances (k,), stored image numbers (k,)) nearest to a query's fc7 vector (D,):
    Euclidean (Fig. 4) or by the Hamming distance of §6.1's binary codes (`by="codes"`)."""
    if by == "fc7":
        d, i = nearest_neighbors(query[None].float(), result["features"], k)
        return d[0], i[0]
    if by != "codes":
        raise AlexNetError(f"unknown search {by!r}: fc7 (Euclidean) or codes (Hamming)")
    codes = result.get("codes")
    if not codes:
        raise AlexNetError("no binary codes: the dataset has fewer than 2 images")
    encoder = CodeEncoder(codes["dim"], codes["bits"], pca_dims=codes["pca_dims"])
    encoder.load_state_dict(codes["state_dict"])
    d, i = hamming_neighbors(encoder.eval().codes(query[None].float()), codes["packed"], k)
    return d[0].float(), i[0]
