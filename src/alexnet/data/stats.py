"""Training-set statistics: §2's per-pixel mean image, per-channel mean/std, and §4.1's PCA of
the RGB values of all training pixels."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from tqdm import tqdm

from alexnet.atomic import atomic_open
from alexnet.data.augment import fit_square, to_channels
from alexnet.data.images import load_image
from alexnet.errors import DataError, WriteError


class StatsAccumulator:
    """Running float64 sums over image batches (B, C, S, S) of 0..255 values."""

    def __init__(self) -> None:
        self.sum: torch.Tensor | None = None  # (C, S, S): Σ images
        self.s1: torch.Tensor | None = None  # (C,): Σ pixel values in [0, 1]
        self.s2: torch.Tensor | None = None  # (C, C): Σ v vᵀ, v in [0, 1]
        self.n = 0
        self.pixels = 0

    def add(self, images: torch.Tensor) -> None:
        """images uint8 or float (B, C, S, S) in 0..255."""
        x = images.double()
        flat = x.transpose(0, 1).reshape(x.shape[1], -1) / 255.0  # (C, B*S*S)
        parts = (x.sum(0), flat.sum(1), flat @ flat.T)
        if self.sum is None:
            self.sum, self.s1, self.s2 = parts
        else:
            self.sum, self.s1, self.s2 = self.sum + parts[0], self.s1 + parts[1], self.s2 + parts[2]
        self.n += x.shape[0]
        self.pixels += flat.shape[1]

    def merge(self, other: StatsAccumulator) -> None:
        if other.n == 0:
            return
        if self.sum is None:
            self.sum, self.s1, self.s2 = other.sum, other.s1, other.s2
        else:
            self.sum, self.s1, self.s2 = (self.sum + other.sum, self.s1 + other.s1,
                                          self.s2 + other.s2)
        self.n += other.n
        self.pixels += other.pixels

    def finish(self) -> dict[str, torch.Tensor]:
        """{"mean": float32 (C, S, S) in 0..255 (§2), "channel_mean"/"channel_std": (C,) in
        0..255, "eigval": (C,) descending and "eigvec": (C, C) columns: eigen-decomposition of
        the covariance of pixel values in [0, 1] (§4.1), "images": n}."""
        if self.n == 0 or self.sum is None:
            raise DataError("no readable training image: cannot compute the mean image")
        m = self.s1 / self.pixels
        cov = self.s2 / self.pixels - torch.outer(m, m)  # (C, C)
        eigval, eigvec = torch.linalg.eigh(cov)  # ascending
        eigval, eigvec = eigval.flip(0).clamp_min(0), eigvec.flip(1)
        eigvec = eigvec * torch.where(eigvec.sum(0) < 0, -1.0, 1.0)  # a fixed sign per vector
        return {"mean": (self.sum / self.n).float(), "channel_mean": (m * 255).float(),
                "channel_std": (cov.diagonal().clamp_min(0).sqrt() * 255).float(),
                "eigval": eigval.float(), "eigvec": eigvec.float(),
                "images": torch.tensor(self.n)}


def memory_stats(images: torch.Tensor, channels: int, chunk: int = 5000) -> dict:
    """Statistics of a uint8 (N, C, H, W) tensor at its own resolution, in `channels`."""
    acc = StatsAccumulator()
    for i in range(0, len(images), chunk):
        acc.add(to_channels(images[i:i + chunk].float(), channels))
    return acc.finish()


def resize_mean(mean: torch.Tensor, size: int) -> torch.Tensor:
    """The mean image (C, S, S) at size×size. Bilinear resizing is linear in its input, so this
    equals the mean of the resized images."""
    return fit_square(mean[None].float(), size)[0]


class _Fitted(torch.utils.data.Dataset):
    """File i fitted to size×size as uint8 (3, size, size); None when it cannot be read (the
    statistics use the readable files; training names the unreadable one when it meets it)."""

    def __init__(self, paths: list[str], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor | None:
        try:
            return fit_square(load_image(self.paths[i]), self.size)
        except DataError:
            return None


def _stack_readable(items: list[torch.Tensor | None]) -> torch.Tensor | None:
    readable = [x for x in items if x is not None]
    return torch.stack(readable) if readable else None


def tree_stats(paths: list[str], size: int, max_images: int, cache_dir: str | Path,
               workers: int) -> dict:
    """Statistics of up to `max_images` evenly spaced training files, fitted to size×size
    (cached in `cache_dir`; `alexnet prepare` computes them over the whole training set)."""
    step = max(1, -(-len(paths) // max(1, max_images)))
    chosen = paths[::step]
    key = hashlib.sha1("\n".join([str(size), *chosen]).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / "stats" / f"tree-{key}.pt"
    cacheable = len(chosen) >= 1024  # small trees: recomputing is cheaper than a cache file
    if cacheable and cache.is_file():
        try:
            return torch.load(cache, weights_only=True)
        except (OSError, RuntimeError):
            pass  # recompute
    loader = torch.utils.data.DataLoader(_Fitted(chosen, size), batch_size=64,
                                         num_workers=workers if len(chosen) > 256 else 0,
                                         collate_fn=_stack_readable)
    acc = StatsAccumulator()
    for batch in tqdm(loader, desc="mean image and RGB PCA", unit="batch",
                      delay=2.0):  # shown only when the pass takes a while
        if batch is not None:
            acc.add(batch)
    if acc.n == 0:
        raise DataError(f"none of the {len(chosen)} training images sampled for the mean "
                        f"image could be read (e.g. {chosen[0]}); check the folder")
    stats = acc.finish()
    if not cacheable:
        return stats
    try:
        with atomic_open(cache, "wb") as f:
            torch.save(stats, f)
    except WriteError:
        pass  # a read-only or full cache folder only costs the recomputation
    return stats
