"""What the CPU offers a training step: native bf16 matrix units, and an allocator that keeps
freed memory for the next step instead of returning it to the kernel."""

from __future__ import annotations

import ctypes
import sys
from functools import cache
from pathlib import Path

import torch

# /proc/cpuinfo flags of x86 CPUs that run bf16 matrix products natively (oneDNN uses them):
# AVX512-BF16 (Cooper Lake, Zen 4 and later) and AMX-BF16 (Sapphire Rapids and later).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpuinfo_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.partition(":")[2].split())
    return set()


@cache
def native_bf16() -> bool:
    """True where the CPU computes bf16 matrix products natively (AVX512-BF16 or AMX-BF16);
    elsewhere bf16 would be emulated in fp32 and be slower than fp32 itself."""
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):  # torch >= 2.3
        probe = getattr(torch.cpu, name, None)
        if probe is not None:
            try:
                if probe():
                    return True
            except RuntimeError:
                pass
    return bool(_cpuinfo_flags() & set(BF16_FLAGS))


_KEPT = False


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep large freed blocks for reuse (Linux; idempotent).

    By default every block over 32 MiB (a batch of 224-px images, fc7's gradient) comes from
    and goes back to the kernel with mmap/munmap, so each step pays a page fault per 4 KiB when
    it first writes it: measured here, more than the crop and normalisation of the whole batch.
    This is what tcmalloc or jemalloc would do, without preloading them. Returns whether it is
    in effect.
    """
    global _KEPT
    if _KEPT or not sys.platform.startswith("linux"):
        return _KEPT
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # malloc.h
        # No mmap for large blocks, and no trimming of the heap's top below 1 GiB free.
        _KEPT = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold,
                                                                        1 << 30))
    except (OSError, AttributeError):  # not glibc (musl, ...)
        _KEPT = False
    return _KEPT
