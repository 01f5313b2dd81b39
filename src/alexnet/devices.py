"""Device names from the command line and the config: checked against this machine."""

from __future__ import annotations

from typing import Any

import torch

from alexnet.errors import ConfigError


def check_device(name: Any, key: str = "device") -> str | None:
    """None when `name` is a device this machine has (auto, cpu, cuda, cuda:N), else why not."""
    if name == "auto":
        return None
    try:
        device = torch.device(str(name))
    except (RuntimeError, ValueError):
        return f"{key}={name!r}: expected auto, cpu, cuda or cuda:N"
    if device.type == "cpu":
        return None
    if device.type != "cuda":
        return f"{key}={name!r}: expected auto, cpu, cuda or cuda:N"
    if not torch.cuda.is_available():
        return f"{key}={name!r}: CUDA is not available on this machine; use {key}=cpu"
    if device.index is not None and device.index >= torch.cuda.device_count():
        return (f"{key}={name!r}: this machine has {torch.cuda.device_count()} CUDA "
                f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return None


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """`auto`/None -> cuda when available, else cpu; a device this machine lacks (or a name
    that is none, such as `gpu`) is a `ConfigError`."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    problem = check_device(str(device), "--device")
    if problem:
        raise ConfigError(problem)
    return torch.device(device)
