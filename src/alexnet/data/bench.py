"""`bench_loader`: decoded + augmented images per second of the training loader."""

from __future__ import annotations

import time
from itertools import islice
from typing import Any

import torch

from alexnet.data.config import DataConfig
from alexnet.data.loaders import build_loaders
from alexnet.errors import DataError


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_loader(source: str, *, batch_size: int = 128, device: str | torch.device = "cpu",
                 num_batches: int = 50, warmup: int = 2, **options: Any) -> dict[str, Any]:
    """Time `num_batches` training batches (after `warmup` batches: workers starting, caches).

    `options` are further `DataConfig` keys (crop, resize, lighting, workers, ...); for an
    image tree or prepared folder the paper's defaults apply (256 -> random 224 crops, flips).
    Returns images/s, ms per batch, the read path (memory | workers | cuda) and the setup time.
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
    return {"source": source, "device": str(device), "path": bundle.path,
            "batch_size": batch_size, "batches": num_batches, "images": images,
            "seconds": round(seconds, 4), "images_per_s": round(images / max(seconds, 1e-9), 1),
            "ms_per_batch": round(1000 * seconds / num_batches, 3),
            "setup_s": round(setup, 3), "batch_shape": shape,
            "workers": bundle.config["workers"], "torch_threads": torch.get_num_threads()}
