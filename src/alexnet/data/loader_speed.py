"""`bench_loader`: decoded + augmented images per second of the training loader, and for a
prepared (packed JPEG) folder what the same cores decode with nothing else to do: the loader's
ceiling on a CPU, against which its rate is read."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Any

import torch

from alexnet.data.data_config import DataConfig
from alexnet.data.loaders import build_loaders
from alexnet.data.packed import PackedSplit
from alexnet.errors import DataError


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def decode_rate(split: PackedSplit, images: int, threads: int) -> float:
    """Images/s of `split.decode` (torchvision's `decode_jpeg`, which releases the GIL) alone on
    `threads` threads, over the first `images` JPEGs of `split`."""
    indices = range(min(images, len(split)))
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one image per thread, as the loader's workers decode
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(split.decode, indices[:threads]))  # threads started, decoder loaded
            tick = time.perf_counter()
            list(pool.map(split.decode, indices))
            seconds = time.perf_counter() - tick
    finally:
        torch.set_num_threads(torch_threads)
    return len(indices) / max(seconds, 1e-9)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_loader(source: str, *, batch_size: int = 128, device: str | torch.device = "cpu",
                 num_batches: int = 50, warmup: int = 2, **options: Any) -> dict[str, Any]:
    """Time `num_batches` training batches (after `warmup` batches: workers starting, caches).

    `options` are further `DataConfig` keys (crop, resize, lighting, workers, ...); for an
    image tree or prepared folder the paper's defaults apply (256 -> random 224 crops, flips).
    Returns images/s, ms per batch, the read path (memory | workers | cuda) and the
    setup time; for a prepared folder read on the CPU also `decode_only_images_per_s` (the same
    number of images decoded by `decode_rate` on every usable core) and `of_decode` (the
    loader's rate as a fraction of it).
    """
    device = torch.device(device)
    start = time.perf_counter()
    bundle = build_loaders(DataConfig.from_dict({"source": source, **options}),
                           batch_size=batch_size, device=device, seed=0)
    setup = time.perf_counter() - start
    if len(bundle.train) <= warmup:
        raise DataError(f"{source} gives {len(bundle.train)} training batch(es) of "
                        f"{batch_size}, not more than the {warmup} warm-up batches; use a "
                        "smaller --batch-size")
    num_batches = max(1, min(num_batches, len(bundle.train) - warmup))
    batches = bundle.train.iterate(0)
    for _ in islice(batches, warmup):
        pass
    _sync(device)
    tick = time.perf_counter()
    images, shape = 0, None
    for x, y in islice(batches, num_batches):
        images, shape = images + len(y), list(x.shape)
    _sync(device)
    seconds = time.perf_counter() - tick
    batches.close()  # stops the loader's workers before the decode-only timing
    rate = images / max(seconds, 1e-9)
    ceiling = {}
    split = bundle.train.fetcher.split
    if isinstance(split, PackedSplit) and bundle.path != "cuda":
        threads = usable_cores()
        decode_only = decode_rate(split, images, threads)
        ceiling = {"decode_only_images_per_s": round(decode_only, 1),
                   "decode_threads": threads, "of_decode": round(rate / decode_only, 3)}
    return {"source": source, "device": str(device), "path": bundle.path,
            "batch_size": batch_size, "batches": num_batches, "images": images,
            "seconds": round(seconds, 4), "images_per_s": round(rate, 1),
            "ms_per_batch": round(1000 * seconds / num_batches, 3),
            "setup_s": round(setup, 3), "batch_shape": shape,
            "workers": bundle.config["workers"], "torch_threads": torch.get_num_threads(),
            **ceiling}
