"""A tiny in-memory stand-in for `alexnet.data.build_loaders` (the DataBundle contract of
docs/ARCHITECTURE.md), used by the training tests; and a check that it keeps that contract."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch


class FakeTrain:
    """Batches of a fixed tensor dataset; the order is a pure function of (seed, epoch, batch,
    rank). Rank r of W takes slice r of each global batch of W·batch_size images."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, rank: int,
                 world_size: int, device: torch.device, nan_at: tuple[int, int] | None = None,
                 on_batch: Any = None) -> None:
        self.x, self.y, self.bs = x, y, batch_size
        self.seed, self.rank, self.world = seed, rank, world_size
        self.device, self.nan_at, self.on_batch = device, nan_at, on_batch
        self.lighting = True
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.x) // (self.bs * self.world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def iterate(self, epoch: int, start_batch: int = 0):
        g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        perm = torch.randperm(len(self.x), generator=g)
        for b in range(start_batch, len(self)):
            if self.on_batch is not None:
                self.on_batch(epoch, b)
            lo = (b * self.world + self.rank) * self.bs
            idx = perm[lo:lo + self.bs]
            x = self.x[idx].clone()
            if self.nan_at is not None and (epoch, b) >= self.nan_at:
                x.fill_(float("nan"))
            yield x.to(self.device), self.y[idx].to(self.device)

    def __iter__(self):
        return self.iterate(self.epoch)


def make_data(*, n: int = 64, classes: int = 3, size: int = 16, channels: int = 1,
              nan_at: tuple[int, int] | None = None, on_batch: Any = None):
    """A builder with `build_loaders`' keyword signature over `n` generated images whose class
    shows in their mean brightness (so a few steps learn something)."""
    g = torch.Generator().manual_seed(123)
    y = torch.arange(n) % classes
    x = torch.randn(n, channels, size, size, generator=g) * 0.5 + y[:, None, None, None] - 1.0

    def build(cfg: dict, *, batch_size: int, device: torch.device, seed: int, rank: int = 0,
              world_size: int = 1) -> SimpleNamespace:
        train = FakeTrain(x, y, batch_size, seed, rank, world_size, device, nan_at, on_batch)
        val = [(x[i:i + 16].to(device), y[i:i + 16].to(device)) for i in range(0, 32, 16)]
        return SimpleNamespace(
            train=train, val=val, eval_loader=lambda views="center", **kw: val,
            num_classes=classes, in_channels=channels,
            classes=[f"class{i}" for i in range(classes)],
            normalization={"mean": torch.zeros(channels, 1, 1), "std": torch.ones(channels, 1, 1)},
            preprocess={"resize": size, "crop": size})

    return build


def test_fake_order_is_a_pure_function_of_epoch_and_batch():
    build = make_data()
    a = build({}, batch_size=8, device=torch.device("cpu"), seed=0)
    resumed = list(a.train.iterate(1, 3))
    full = list(a.train.iterate(1, 0))
    assert len(full) == len(a.train) == 8
    assert torch.equal(resumed[0][0], full[3][0])
    assert not torch.equal(list(a.train.iterate(0, 3))[0][1], resumed[0][1]) or \
        not torch.equal(list(a.train.iterate(0, 3))[0][0], resumed[0][0])


def test_fake_ranks_split_the_global_batch():
    build = make_data()
    one = build({}, batch_size=8, device=torch.device("cpu"), seed=0)
    r0 = build({}, batch_size=4, device=torch.device("cpu"), seed=0, rank=0, world_size=2)
    r1 = build({}, batch_size=4, device=torch.device("cpu"), seed=0, rank=1, world_size=2)
    x = next(one.train.iterate(0))[0]
    assert torch.equal(torch.cat([next(r0.train.iterate(0))[0], next(r1.train.iterate(0))[0]]), x)


def colour_class_tree(root: Path, classes: int = 3, per_class: int = 10) -> Path:
    """An image folder root/class<c>/<i>.png of 48×56 noise images whose brightness tells the
    class apart (class c: values 80c..80c+80), for end-to-end runs on the real data part."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = (torch.rand(48, 56, 3, generator=g) * 80 + 80 * c).byte().numpy()
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root
