"""The packed format written by `alexnet prepare` (in the spirit of FFCV).

A prepared folder holds, per split (train, val):
  `<split>.bin`          the JPEG bytes of every image (size×size), one after the other
  `<split>.offsets.npy`  int64 (N + 1,): image i is bytes [offsets[i], offsets[i+1])
  `<split>.labels.npy`   int64 (N,): class index (sorted folder / wnid order)
and `stats.pt` ({"mean": float32 (3, S, S) in 0..255, "eigval": (3,), "eigvec": (3, 3) columns,
of the RGB covariance of training pixels in [0, 1]}), `skipped.txt` (unreadable files and why)
and `meta.json`, written last: a folder without it is not finished. Statistics: `stats.py`;
JPEG coding: `images.py`; the folder as a dataset: `sources.open_source`.

Everything is checked when a folder is opened (offsets from 0, increasing, ending at the size
of the .bin file; one label per image, each a class of meta.json; the statistics' shapes), so a
truncated or crafted file is one `DataError` naming it, not garbage batches.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alexnet.data.images import decode_jpegs
from alexnet.errors import DataError

FORMAT = "alexnet-packed/1"
SPLITS = ("train", "val")


def is_packed(path: str | Path) -> bool:
    return (Path(path) / "meta.json").is_file()


AGAIN = "run `alexnet prepare SRC DEST` again into an empty DEST"


def _load_ints(path: Path) -> np.ndarray:
    """A 1-d integer array saved by `prepare` (never a pickle)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read {path} ({err}); {AGAIN}") from None
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise DataError(f"{path} holds a {array.dtype} array of shape {array.shape}, not a "
                        f"1-d integer array; {AGAIN}")
    return array.astype(np.int64)


class PackedSplit:
    """One split of a prepared folder: random access to JPEG bytes and labels."""

    def __init__(self, folder: str | Path, split: str, num_classes: int | None = None) -> None:
        self.folder, self.split = Path(folder), split
        bin_path = self.folder / f"{split}.bin"
        offsets_path = self.folder / f"{split}.offsets.npy"
        labels_path = self.folder / f"{split}.labels.npy"
        self.offsets = _load_ints(offsets_path)
        labels = _load_ints(labels_path)
        try:
            size = bin_path.stat().st_size
        except OSError as err:
            raise DataError(f"cannot read {bin_path} ({err.strerror or err}); {AGAIN}") from None
        if len(self.offsets) == 0 or self.offsets[0] != 0 or \
                np.any(np.diff(self.offsets) <= 0):
            raise DataError(f"{offsets_path} is corrupt: offsets must start at 0 and increase "
                            f"(each image has some bytes); {AGAIN}")
        if self.offsets[-1] != size:
            raise DataError(f"{bin_path} has {size:,} bytes, but {offsets_path} says "
                            f"{int(self.offsets[-1]):,}: it is truncated or does not belong to "
                            f"these offsets; {AGAIN}")
        if len(labels) != len(self.offsets) - 1:
            raise DataError(f"{labels_path} has {len(labels)} labels for "
                            f"{len(self.offsets) - 1} images; {AGAIN}")
        if num_classes is not None and len(labels) and (labels.min() < 0 or
                                                        labels.max() >= num_classes):
            raise DataError(f"{labels_path} holds labels {int(labels.min())}..."
                            f"{int(labels.max())}, outside the {num_classes} classes of "
                            f"meta.json; {AGAIN}")
        self.labels = torch.from_numpy(labels)
        self._bytes: np.ndarray | None = None  # memory-mapped lazily (once per process)

    def __len__(self) -> int:
        return len(self.labels)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers map the file themselves
        return {**self.__dict__, "_bytes": None}

    def raw(self, i: int) -> torch.Tensor:
        """uint8 (n_bytes,) JPEG data of image i."""
        if self._bytes is None:
            self._bytes = np.memmap(self.folder / f"{self.split}.bin", dtype=np.uint8, mode="r")
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return torch.from_numpy(np.array(self._bytes[start:end]))

    def decode(self, i: int) -> torch.Tensor:
        """uint8 (3, S, S) RGB of image i (CPU decode)."""
        try:
            return decode_jpegs(self.raw(i))
        except RuntimeError as err:
            raise DataError(f"image {i} of {self.folder / (self.split + '.bin')} is not a "
                            f"readable JPEG ({str(err).splitlines()[0] if str(err) else err}); "
                            f"{AGAIN}") from None


def read_meta(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}; run `alexnet prepare` again") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DataError(f"{path} has format {found!r}, expected {FORMAT!r}; "
                        "prepare the dataset again with this version")
    classes, size = meta.get("classes"), meta.get("size")
    if not (isinstance(classes, list) and len(classes) >= 2 and
            all(isinstance(c, str) for c in classes)):
        raise DataError(f"{path}: 'classes' must be a list of at least two names; {AGAIN}")
    if not (isinstance(size, int) and size > 0) or not isinstance(meta.get("folders"), list):
        raise DataError(f"{path}: 'size' or 'folders' is missing or malformed; {AGAIN}")
    return meta


STATS_SHAPES = {"mean": (3, None, None), "channel_mean": (3,), "channel_std": (3,),
                "eigval": (3,), "eigvec": (3, 3)}


def load_stats(folder: str | Path, size: int | None = None) -> dict[str, torch.Tensor]:
    """stats.pt, checked: the mean image (3, size, size), channel mean/std (3,), the PCA's
    eigenvalues (3,) >= 0 and eigenvectors (3, 3), all finite."""
    path = Path(folder) / "stats.pt"
    try:
        stats = torch.load(path, weights_only=True)
    except Exception as err:  # truncated, not a torch file, a pickle of other objects
        raise DataError(f"cannot read {path} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}); {AGAIN}") from None
    if not isinstance(stats, dict):
        raise DataError(f"{path} holds a {type(stats).__name__}, not the statistics; {AGAIN}")
    for key, shape in STATS_SHAPES.items():
        value = stats.get(key)
        want = tuple(size if s is None and size else s for s in shape)
        if not (isinstance(value, torch.Tensor) and value.is_floating_point()
                and value.dim() == len(want)
                and all(w is None or w == n for w, n in zip(want, value.shape, strict=True))
                and bool(value.isfinite().all())):
            found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise DataError(f"{path}: {key!r} must be finite floats of shape "
                            f"{tuple('S' if w is None else w for w in want)}, found {found}; "
                            f"{AGAIN}")
    if bool((stats["eigval"] < 0).any()):
        raise DataError(f"{path}: the PCA eigenvalues must be >= 0; {AGAIN}")
    return stats
