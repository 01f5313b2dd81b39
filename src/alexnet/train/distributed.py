"""Several processes through torch.distributed: torchrun detection, DDP setup, re-launch.

`torchrun --nproc_per_node=N -m alexnet train ...` sets RANK, WORLD_SIZE and LOCAL_RANK; each
process trains on its own shard (rank and world_size go to `build_loaders`) with batch
`batch_size / world_size`, DDP averages the gradients, and only rank 0 writes files.
`alexnet train --gpus N` re-launches itself through `torch.distributed.run`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist
from torch.distributed import run as torchrun

from alexnet.errors import ConfigError

# torchrun's agents share one store over rendezvous rounds unless this is 1; a restarted gloo
# group can then read a peer's address of the round before and fail to connect
FRESH_STORE = "TORCH_DISABLE_SHARE_RDZV_TCP_STORE"


@dataclass(frozen=True)
class Dist:
    """Where this process stands: rank, world size and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` = this process's CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} asked for, but CUDA is not available; use device=cpu")
    return device


def init_distributed(device: str = "auto", timeout: float | None = None) -> Dist:
    """Join the process group torchrun describes (env RANK/WORLD_SIZE), or run alone.
    `timeout` (seconds): how long a collective waits for the other processes."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Dist(device=pick_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not tdist.is_initialized():
        tdist.init_process_group("nccl" if dev.type == "cuda" else "gloo",
                                 timeout=timedelta(seconds=timeout) if timeout else None)
    return Dist(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def torchrun_job() -> str | None:
    """The torchrun job (its --rdzv-id; a random id with --standalone) this process is a
    worker of; None outside torchrun."""
    job = os.environ.get("TORCHELASTIC_RUN_ID")
    return job if job and job != "none" else None


def shutdown_distributed() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """The global batch split evenly; the global batch and so the lr stay those of the recipe."""
    if batch_size % world_size:
        raise ConfigError(f"batch_size={batch_size} does not split evenly over {world_size} "
                          f"processes; pick a multiple of {world_size}")
    return batch_size // world_size


def all_reduce_sum(t: torch.Tensor, dist: Dist) -> torch.Tensor:
    """Sum `t` over all processes (in place); a no-op when running alone."""
    if dist.enabled:
        tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    return t


def any_process(flag: bool, dist: Dist) -> bool:
    """True when `flag` is set on any process (e.g. a stop request seen by one rank)."""
    if not dist.enabled:
        return flag
    t = torch.tensor([float(flag)], device=dist.device)
    return bool(all_reduce_sum(t, dist).item() > 0)


def launch(nproc: int, train_argv: list[str]) -> int:
    """Run `alexnet train <train_argv>` in `nproc` processes on this node via torchrun."""
    if nproc < 1:
        raise ConfigError(f"--gpus must be at least 1, got {nproc}")
    if torch.cuda.is_available() and nproc > torch.cuda.device_count():
        raise ConfigError(f"--gpus {nproc} asked for, but only {torch.cuda.device_count()} "
                          "CUDA devices are visible")
    os.environ.setdefault(FRESH_STORE, "1")  # docs/DISTRIBUTED.md: restarts need it
    torchrun.main(["--standalone", f"--nproc_per_node={nproc}", "-m", "alexnet", "train",
              *train_argv])
    return 0
