"""Wall-clock timing of repeated GPU or CPU work: warm-up excluded, CUDA timed with events."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from tqdm import tqdm


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def time_calls(fn: Callable[[], object], iters: int, warmup: int, device: torch.device,
               desc: str = "", progress: bool = True) -> float:
    """Seconds per call of `fn`, averaged over `iters` calls after `warmup` untimed ones.

    No host synchronisation inside the timed loop: CUDA work is bracketed by events and one
    synchronize at the end, so the number is the device's throughput, as in training.
    """
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    bar = tqdm(total=warmup + iters, desc=desc, unit="it", leave=False, disable=not progress)
    for _ in range(warmup):
        fn()
        bar.update()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
            bar.update()
        end.record()
        torch.cuda.synchronize(device)
        seconds = start.elapsed_time(end) / 1e3
    else:
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
            bar.update()
        seconds = time.perf_counter() - t0
    bar.close()
    return seconds / iters


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float | None:
    """Peak allocated GPU memory since the last reset, MiB (None on CPU)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20
