"""The packed format written by `alexnet prepare` (in the spirit of FFCV).

A prepared folder holds, per split (train, val):
  `<split>.bin`          the JPEG bytes of every image (size×size), one after the other
  `<split>.offsets.npy`  int64 (N + 1,): image i is bytes [offsets[i], offsets[i+1])
  `<split>.labels.npy`   int64 (N,): class index (sorted folder / wnid order)
and `stats.pt` ({"mean": float32 (3, S, S) in 0..255, "eigval": (3,), "eigvec": (3, 3) columns,
of the RGB covariance of training pixels in [0, 1]}), `skipped.txt` (unreadable files and why)
and `meta.json`, written last: a folder without it is not finished. Statistics: `stats.py`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from alexnet.errors import DataError

FORMAT = "alexnet-packed/1"
SPLITS = ("train", "val")


def decode_jpegs(data: torch.Tensor | list[torch.Tensor], device: str | torch.device = "cpu"):
    """torchvision's JPEG decoder (nvjpeg for a CUDA device): uint8 (3, H, W) RGB, or a list."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if torch.device(device).type == "cuda":
        # nvJPEG's hardware decoder does not wait for work already queued on the stream: it
        # can write its outputs into blocks the caching allocator just freed while queued
        # kernels still read them (NaN losses in training, seen on an H200). Drain the stream.
        torch.cuda.current_stream(torch.device(device)).synchronize()
    with warnings.catch_warnings():  # torchvision 0.29 deprecates it for torchcodec; it is
        warnings.simplefilter("ignore", DeprecationWarning)  # still there and decodes on GPU
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def encode_jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """uint8 (3, H, W) -> uint8 (n_bytes,) JPEG."""
    from torchvision.io import encode_jpeg as _encode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _encode(image, quality=quality)


def is_packed(path: str | Path) -> bool:
    return (Path(path) / "meta.json").is_file()


class PackedSplit:
    """One split of a prepared folder: random access to JPEG bytes and labels."""

    def __init__(self, folder: str | Path, split: str) -> None:
        self.folder, self.split = Path(folder), split
        try:
            self.offsets = np.load(self.folder / f"{split}.offsets.npy")
            self.labels = torch.from_numpy(np.load(self.folder / f"{split}.labels.npy"))
        except (OSError, ValueError) as err:
            raise DataError(f"{self.folder} is not a complete prepared dataset ({err}); run "
                            "`alexnet prepare SRC DEST` again") from err
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
        return decode_jpegs(self.raw(i))


def read_meta(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}; run `alexnet prepare` again") from err
    if meta.get("format") != FORMAT:
        raise DataError(f"{path} has format {meta.get('format')!r}, expected {FORMAT!r}; "
                        "prepare the dataset again with this version")
    return meta


def load_stats(folder: str | Path) -> dict[str, torch.Tensor]:
    path = Path(folder) / "stats.pt"
    try:
        return torch.load(path, weights_only=True)
    except (OSError, RuntimeError) as err:
        raise DataError(f"cannot read {path}: {err}; run `alexnet prepare` again") from err


def open_packed(folder: str | Path):
    """A prepared folder as a `Source` (kind "packed")."""
    from alexnet.data.sources import Source

    meta = read_meta(folder)
    return Source("packed", PackedSplit(folder, "train"), PackedSplit(folder, "val"),
                  list(meta["classes"]), stats=load_stats(folder),
                  info={"name": str(folder), "size": meta["size"], "folders": meta["folders"]})
