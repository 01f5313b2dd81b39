"""`build_loaders`: training and evaluation batches on the device.

Three ways to get uint8 batches, one `Pipeline` to turn them into network input:
- memory: Fashion-MNIST / CIFAR-10 as one uint8 tensor (on the GPU when there is one);
- workers: DataLoader worker processes read image files or packed JPEGs on the CPU;
- cuda: packed JPEG bytes decoded in batches by nvjpeg (`decode_jpeg(list, device="cuda")`).
Order and augmentation are a pure function of (seed, epoch, batch index, rank).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from alexnet.accel.cpu import keep_freed_memory
from alexnet.data.augment import LUMA, batch_generator, fit_square
from alexnet.data.data_config import DataConfig
from alexnet.data.images import decode_jpegs, load_image
from alexnet.data.pipeline import Pipeline
from alexnet.data.sources import open_source
from alexnet.data.splits import FileSplit, MemorySplit, Source
from alexnet.data.stats import memory_stats, resize_mean, tree_stats
from alexnet.errors import ConfigError, DataError

Batch = tuple[torch.Tensor, torch.Tensor]  # uint8 (B, C, H, W), int64 (B,)
# (j, n) -> the j-th batch's tensor and the function that writes its image k (`_thread_batches`)
MakeBatch = Callable[[int, int], tuple[torch.Tensor, Callable[[int, torch.Tensor], None]]]


class _ItemDataset(torch.utils.data.Dataset):
    """Image i as uint8 (3, S, S): a file fitted to S×S, or a packed JPEG decoded."""

    def __init__(self, split: Any, size: int) -> None:
        self.split, self.size = split, size

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor | None, int | str]:
        try:
            if isinstance(self.split, FileSplit):
                image = fit_square(load_image(self.split.paths[i]), self.size)
            else:
                image = self.split.decode(i)
        except DataError as err:  # handed to the main process as a message, not a traceback
            return None, str(err)
        return image, int(self.split.labels[i])


class _Unreadable(list):
    """What a worker returns for a batch with unreadable images: their messages."""


def _collate(items: list[tuple[torch.Tensor | None, int | str]]) -> Batch | _Unreadable:
    errors = [str(y) for x, y in items if x is None]
    if errors:
        return _Unreadable(errors)
    return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


class Fetcher:
    """Turns lists of indices into uint8 batches on (or on the way to) the device."""

    def __init__(self, source_kind: str, split: Any, cfg: DataConfig, device: torch.device,
                 fit_size: int) -> None:
        self.split, self.device, self.cfg = split, device, cfg
        self.mode = "workers"
        if isinstance(split, MemorySplit):
            self.mode = "memory"
            on_gpu = device.type == "cuda" and split.images.numel() < 4 << 30
            self.images = split.images.to(device) if on_gpu else split.images
        elif source_kind == "packed" and device.type == "cuda" and cfg.decode in ("auto", "cuda"):
            self.mode = "cuda"
        elif cfg.decode == "cuda":
            raise ConfigError("data.decode=cuda needs a prepared (packed) dataset and a CUDA "
                              "device; use decode=auto, or `alexnet prepare` the folder")
        self.fit_size = fit_size

    def batches(self, index_lists: list[torch.Tensor]) -> Iterator[Batch]:
        if self.mode == "memory":
            for idx in index_lists:
                yield self.images[idx.to(self.images.device)], self.split.labels[idx]
        elif self.mode == "cuda":
            yield from self._cuda_batches(index_lists)
        else:
            yield from self._worker_batches(index_lists)

    def _worker_batches(self, index_lists: list[torch.Tensor]) -> Iterator[Batch]:
        workers = int(self.cfg.workers or 0)
        loader = torch.utils.data.DataLoader(
            _ItemDataset(self.split, self.fit_size), batch_sampler=[i.tolist() for i in
                                                                    index_lists],
            num_workers=workers, collate_fn=_collate, pin_memory=self.device.type == "cuda",
            worker_init_fn=_worker_init if workers else None,
            prefetch_factor=4 if workers else None,
            # its own generator: the loader would otherwise draw its workers' base seed from
            # the global RNG (dropout's), and a resumed run would see other dropout masks
            generator=torch.Generator().manual_seed(0))
        for batch in loader:
            if isinstance(batch, _Unreadable):
                more = f" (and {len(batch) - 1} more in this batch)" if len(batch) > 1 else ""
                raise DataError(f"{batch[0]}{more}; or run `alexnet prepare` on the folder once "
                                "and train on its output")
            yield batch

    def _cuda_batches(self, index_lists: list[torch.Tensor]) -> Iterator[Batch]:
        """Bytes read by a thread one batch ahead; nvjpeg decodes a whole batch at once."""
        def read(idx: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
            return [self.split.raw(int(i)) for i in idx], self.split.labels[idx]

        with ThreadPoolExecutor(max_workers=2) as pool:
            pending = [pool.submit(read, idx) for idx in index_lists[:2]]
            for k in range(len(index_lists)):
                data, labels = pending.pop(0).result()
                if k + 2 < len(index_lists):
                    pending.append(pool.submit(read, index_lists[k + 2]))
                images = decode_jpegs(data, device=self.device)
                yield torch.stack(images), labels


class TrainLoader:
    """Shuffled, augmented training batches; `len()` = batches per epoch for this rank."""

    def __init__(self, fetcher: Fetcher, labels: torch.Tensor, pipeline: Pipeline,
                 batch_size: int, device: torch.device, seed: int, rank: int,
                 world_size: int) -> None:
        self.fetcher, self.labels, self.pipeline = fetcher, labels, pipeline
        self.batch_size, self.device, self.seed = batch_size, device, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.lighting = True  # the schedule switches colour noise off (layer-params-145.cfg)
        self.per_rank = len(labels) // world_size
        if self.per_rank == 0:
            raise DataError(f"the training split has {len(labels)} images, fewer than the "
                            f"{world_size} processes; add images")

    def __len__(self) -> int:
        return max(1, self.per_rank // self.batch_size)  # drop_last, but at least one batch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's image indices for `epoch` (every rank shares one permutation)."""
        perm = torch.randperm(len(self.labels), generator=batch_generator(self.seed, epoch))
        return perm[self.rank::self.world_size][:self.per_rank]

    def iterate(self, epoch: int, start_batch: int = 0) -> Iterator[tuple[torch.Tensor,
                                                                           torch.Tensor]]:
        """Batches start_batch.. of `epoch`: (x float (B, C, s, s), y int64 (B,)) on device."""
        order = self.order(epoch)
        bs = self.batch_size
        index_lists = [order[b * bs:(b + 1) * bs] for b in range(start_batch, len(self))]
        non_blocking = self.device.type == "cuda"
        for b, (x, y) in enumerate(self.fetcher.batches(index_lists), start=start_batch):
            gen = batch_generator(self.seed, epoch, b, self.rank)
            x = self.pipeline.train(x.to(self.device, non_blocking=non_blocking), gen,
                                    lighting=bool(self.lighting))
            yield x, y.to(self.device, non_blocking=non_blocking)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.iterate(self.epoch)

class EvalLoader:

    """The whole split in order, sharded over ranks: centre views or ten views (§4.1)."""

    def __init__(self, fetcher: Fetcher, labels: torch.Tensor, pipeline: Pipeline,
                 batch_size: int, device: torch.device, rank: int, world_size: int,
                 views: str = "center") -> None:
        if views not in ("center", "ten"):
            raise ConfigError(f"views must be 'center' or 'ten', got {views!r}")
        self.fetcher, self.labels, self.pipeline = fetcher, labels, pipeline
        self.batch_size, self.device, self.views = batch_size, device, views
        self.indices = torch.arange(len(labels))[rank::world_size]

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        index_lists = list(self.indices.split(self.batch_size))
        non_blocking = self.device.type == "cuda"
        for x, y in self.fetcher.batches(index_lists):
            x = self.pipeline.eval(x.to(self.device, non_blocking=non_blocking), self.views)
            yield x, y.to(self.device, non_blocking=non_blocking)


@dataclass
class DataBundle:
    """What training and evaluation need from the data part (docs/ARCHITECTURE.md)."""

    train: TrainLoader
    val: EvalLoader
    num_classes: int
    classes: list[str]
    in_channels: int
    normalization: dict[str, torch.Tensor]
    preprocess: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    path: str = "memory"  # memory | threads | workers | cuda: how batches are read

    def eval_loader(self, views: str = "center", split: str = "val",
                    batch_size: int | None = None, limit: int | None = None) -> EvalLoader:
        """Evaluation batches of the val split (or the train split, e.g. for features);
        `limit`: only the first `limit` images of this process's share (the whole split when
        there is one process, as in `alexnet eval` and `report`)."""
        base = self.val if split == "val" else None
        if split == "train":
            base = EvalLoader(self.train.fetcher, self.train.labels, self.val.pipeline,
                              self.val.batch_size, self.val.device, self.train.rank,
                              self.train.world_size)
        if base is None:
            raise ConfigError(f"split must be 'val' or 'train', got {split!r}")
        loader = EvalLoader(base.fetcher, base.labels, base.pipeline,
                            batch_size or base.batch_size, base.device, 0, 1, views)
        loader.indices = base.indices if limit is None else base.indices[:limit]
        return loader


def _statistics(cfg: DataConfig, source: Source) -> dict[str, torch.Tensor]:
    """Training-set statistics at resize×resize in cfg.channels."""
    if source.kind == "memory":
        stats = memory_stats(source.train.images, cfg.channels)
    elif source.kind == "packed":
        stats = dict(source.stats)
        if cfg.channels == 1:  # the mean image in luma; std from the RGB covariance
            w = torch.tensor(LUMA)
            stats["mean"] = (stats["mean"] * w[:, None, None]).sum(0, keepdim=True)
            cov = stats["eigvec"] @ torch.diag(stats["eigval"]) @ stats["eigvec"].T
            stats["channel_mean"] = (stats["channel_mean"] * w).sum(0, keepdim=True)
            stats["channel_std"] = (w @ cov @ w).clamp_min(0).sqrt().reshape(1) * 255
    else:
        stats = tree_stats(source.train.paths, cfg.resize, cfg.stats_images, cfg.root,
                           int(cfg.workers or 0))
        if cfg.channels == 1:
            raise ConfigError("channels=1 with an image tree is not supported; use channels=3")
    stats["mean"] = resize_mean(stats["mean"], cfg.resize)
    return stats


def build_pipeline(cfg: DataConfig, stats: dict[str, torch.Tensor]) -> Pipeline:
    c = cfg.channels
    if cfg.mean == "pixel":
        mean, std = stats["mean"], torch.ones(c, 1, 1)  # §2: mean image, nothing else
    elif cfg.mean == "channel":
        mean = stats["channel_mean"].reshape(c, 1, 1)
        std = stats["channel_std"].reshape(c, 1, 1).clamp_min(1e-3)
    else:
        mean, std = torch.zeros(c, 1, 1), torch.ones(c, 1, 1)
    original = cfg.variant == "original"
    if cfg.lighting > 0 and c != 3:
        raise ConfigError("data.lighting (PCA colour noise) needs RGB images: set channels=3 "
                          "or lighting=0")
    pca = c == 3 and cfg.lighting > 0
    eigval = stats["eigval"]  # (3,) of the RGB covariance of pixels in [0, 1]
    if original:
        # convdata.py: noise = eigvecs · (randn · color_stdevs) · 0.1, where color_stdevs are the
        # standard deviations along the principal components (√λ): the noise is 10% of the
        # colour variation. §4.1's formula multiplies α by λ itself.
        eigval = eigval.clamp_min(0).sqrt()
    return Pipeline(
        resize=cfg.resize, crop=cfg.crop, channels=c, mean=mean.float(), std=std.float(),
        flip=bool(cfg.flip), lighting_std=float(cfg.lighting),
        eigval=eigval if pca else None, eigvec=stats["eigvec"] if pca else None,
        chunk=cfg.chunk if original else 1,
        noise_divisor=1.0 + float(cfg.lighting) if original else 1.0,
        mean_window="center" if original else "crop")


def _given_normalization(normalization: dict[str, torch.Tensor], cfg: DataConfig
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of a stored normalisation for `cfg` (resolved): a mean image of another
    size brought to resize×resize; a channel count other than cfg.channels is refused."""
    try:
        mean, std = normalization["mean"].float(), normalization["std"].float()
    except (KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"normalization must be {{'mean': tensor, 'std': tensor}}, got "
                          f"{type(normalization).__name__} ({err})") from None
    c = cfg.channels
    if mean.dim() != 3 or std.shape != (mean.shape[0], 1, 1) or mean.shape[0] != c:
        raise ConfigError(f"the given normalization (mean {tuple(mean.shape)}, std "
                          f"{tuple(std.shape)}) does not fit data.channels={c}: expected a mean "
                          f"({c}, 1, 1) or ({c}, H, W) and a std ({c}, 1, 1); set data.channels "
                          f"to {mean.shape[0] if mean.dim() == 3 else '?'}")
    if mean.shape[-1] != 1 and mean.shape[-2:] != (cfg.resize, cfg.resize):
        mean = resize_mean(mean, cfg.resize)  # (C, resize, resize)
    return mean, std


def _no_statistics(channels: int) -> dict[str, torch.Tensor]:
    """Placeholders for `build_pipeline` when a given normalisation replaces the data's mean
    and std and no PCA lighting needs its eigenvectors: nothing is computed from the data."""
    return {"mean": torch.zeros(channels, 1, 1), "channel_mean": torch.zeros(channels),
            "channel_std": torch.ones(channels), "eigval": torch.zeros(3),
            "eigvec": torch.eye(3)}


def build_loaders(cfg: DataConfig, *, batch_size: int, device: torch.device | str, seed: int,
                  rank: int = 0, world_size: int = 1,
                  normalization: dict[str, torch.Tensor] | None = None,
                  check_classes: Callable[[list[str]], None] | None = None) -> DataBundle:
    """Training and validation loaders for `cfg` (see docs/ARCHITECTURE.md, data).

    `normalization` ({"mean": (C, 1, 1) or (C, H, W), "std": (C, 1, 1)}, e.g. a checkpoint's
    `data.normalization`) replaces the mean and std computed from the data's training
    statistics, for training and evaluation batches alike: a model sees inputs normalised the
    way it was trained. A mean image of another size is resized; another channel count is a
    `ConfigError`. The statistics are then read only when PCA lighting needs them.
    `check_classes` sees the source's class names before anything costly (statistics) is done,
    and may raise (a checkpoint made for other classes).
    """
    cfg = cfg.resolved()
    device = torch.device(device)
    if device.type == "cpu":  # batches of 224-px images are large blocks: reuse them
        keep_freed_memory()
    source = open_source(cfg.source, cfg.root, cfg.val_fraction)
    if check_classes is not None:
        check_classes(list(source.classes))
    if len(source.val) == 0:
        raise DataError(f"{cfg.source} has no validation images; add a val/ folder or "
                        "raise data.val_fraction")
    if cfg.crop is not None and cfg.crop > cfg.resize:
        raise ConfigError(f"data.crop {cfg.crop} > data.resize {cfg.resize}")
    if normalization is None:
        pipeline = build_pipeline(cfg, _statistics(cfg, source))
    else:
        mean, std = _given_normalization(normalization, cfg)
        pca = cfg.lighting > 0 and cfg.channels == 3
        stats = _statistics(cfg, source) if pca else _no_statistics(cfg.channels)
        pipeline = replace(build_pipeline(cfg, stats), mean=mean, std=std)
    fit_size = int(source.info.get("size", cfg.resize))  # packed: stored size; files: resize
    train_fetch = Fetcher(source.kind, source.train, cfg, device, fit_size)
    val_fetch = Fetcher(source.kind, source.val, cfg, device, fit_size)
    on_device = pipeline.to(device)
    train = TrainLoader(train_fetch, source.train.labels, on_device, batch_size, device, seed,
                        rank, world_size)
    val = EvalLoader(val_fetch, source.val.labels, on_device, batch_size, device, rank,
                     world_size)
    return DataBundle(train=train, val=val, num_classes=len(source.classes),
                      classes=list(source.classes), in_channels=cfg.channels,
                      normalization=pipeline.normalization(), preprocess=pipeline.preprocess(),
                      config=cfg.asdict(), path=train_fetch.mode)


def preprocess_images(images: list[torch.Tensor] | torch.Tensor,
                      normalization: dict[str, torch.Tensor], preprocess: dict[str, Any],
                      views: str = "center") -> torch.Tensor:
    """The loaders' eval transform on arbitrary uint8 (C, H, W) images: shorter side -> resize,
    central resize×resize, channels, normalisation, then centre or ten views.

    Returns float (B, C, s, s) or (B, 10, C, s, s) on the images' device.
    """
    if isinstance(images, torch.Tensor) and images.dim() == 3:
        images = [images]
    if len(images) == 0:
        raise DataError("preprocess_images got no images")
    device = images[0].device
    pipeline = Pipeline.from_saved(normalization, preprocess).to(device)
    fitted = [pipeline.normalized(img[None] if img.dim() == 3 else img) for img in images]
    return pipeline.views(torch.cat(fitted), views)
