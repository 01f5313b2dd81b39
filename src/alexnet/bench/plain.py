"""The plain fp32 eager step of `alexnet bench train` on a CPU, timed in a process of its own.

A user's own training script runs with what the process starts with. Ours changes the
allocator process-wide (`alexnet.accel.cpu.keep_freed_memory`: glibc keeps freed large blocks
instead of giving them back), so in the benchmark's process the plain step would run faster than
the same step in the user's: measured on a 2-core Xeon, `paper` at 64 px, batch 32, 192 vs 255 ms
per step.
The child is started with `spawn` (a fresh interpreter) and builds the same network from the same
seed; the parent hands it its rounds in turn, and each side waits idle while the other runs.
"""

from __future__ import annotations

import contextlib
import copy
import multiprocessing as mp
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

import torch
from torch import nn

from alexnet.errors import AlexNetError
from alexnet.models.local_response_norm import LocalResponseNorm
from alexnet.train.step import StepFn, make_train_step

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainBenchConfig:
    model: str = "paper"
    batch_size: int = 128  # §5
    steps: int = 50  # timed steps per configuration
    warmup: int = 10  # untimed steps first (compilation, cuDNN autotuning, allocator)
    image_size: int = 224  # §2; 64-112 make the CPU run fast
    num_classes: int = 1000
    in_channels: int = 3  # 1: Fashion-MNIST, as the default recipe's QUICK mode
    device: str = "auto"
    # None: what the device does best (alexnet.accel.step_settings): all on with CUDA;
    # on a CPU bf16 where it is native, channels_last and compile (model and update) together
    amp: bool | None = None  # bf16 autocast
    channels_last: bool | None = None
    compile: bool | None = None  # torch.compile of the model (CPU: and of the update)
    compile_mode: str = "default"  # "reduce-overhead" adds CUDA graphs
    fused_lrn: bool = True  # False: the optimised step keeps the reference LRN
    baseline: bool = True  # also time the plain eager fp32 step
    rounds: int = 5  # CPU: the rows are timed in this many alternating rounds
    seed: int = 0
    progress: bool = True


class _PerTower(nn.Module):
    """An LRN applied to each of `groups` channel blocks on its own (the two towers, §3.5)."""

    def __init__(self, norm: nn.Module, groups: int) -> None:
        super().__init__()
        self.norm, self.groups = norm, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1:
            return self.norm(x)
        return torch.cat([self.norm(part) for part in x.chunk(self.groups, dim=1)], dim=1)


def replace_lrn(model: nn.Module, make: Callable[[LocalResponseNorm], nn.Module]) -> nn.Module:
    """`model` with every `LocalResponseNorm` replaced, in place, by `make(it)` per tower."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LocalResponseNorm):
                setattr(parent, name, _PerTower(make(child), getattr(child, "groups", 1)))
    return model


def plain_lrn(model: nn.Module) -> nn.Module:
    """`model` with every `LocalResponseNorm` replaced, in place, by `torch.nn.LocalResponseNorm`
    (α/n convention; the paper's α becomes α·size there), applied per tower when the LRN has
    groups."""
    return replace_lrn(model, lambda m: nn.LocalResponseNorm(
        m.size, m.alpha if m.alpha_over_n else m.alpha * m.size, m.beta, m.k))


def plain_inputs(cfg: Any) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The template network and the batch, built from `cfg.seed` alike in both processes."""
    from alexnet.models import create_model

    torch.manual_seed(cfg.seed)
    template = create_model(cfg.model, num_classes=cfg.num_classes, in_channels=cfg.in_channels,
                            image_size=cfg.image_size)
    x = torch.randn(cfg.batch_size, cfg.in_channels, cfg.image_size, cfg.image_size)
    y = torch.randint(0, cfg.num_classes, (cfg.batch_size,))
    return template, x, y


def make_plain_step(template: torch.nn.Module, device: torch.device) -> StepFn:
    """The plain step a user would write, on a copy of `template`: `torch.nn.LocalResponseNorm`,
    fp32, NCHW, eager, `torch.optim.SGD` (lr 0.01, momentum 0.9, decay 5e-4)."""
    plain = plain_lrn(copy.deepcopy(template)).to(device)
    opt = torch.optim.SGD(plain.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    return make_train_step(plain, opt, amp=False)


def _worker(conn: Connection, cfg_fields: dict[str, Any], threads: int) -> None:
    from alexnet.accel import cpu
    from alexnet.bench.timing import time_calls

    try:
        torch.set_num_threads(threads)
        cfg = TrainBenchConfig(**cfg_fields)
        template, x, y = plain_inputs(cfg)
        device = torch.device("cpu")
        step = make_plain_step(template, device)
        conn.send(("ready", {"pid": os.getpid(), "keeps_freed_memory": cpu._KEPT}))
        while True:
            iters, warmup = conn.recv()
            if iters == 0:
                break
            conn.send(("ok", time_calls(lambda: step(x, y), iters, warmup, device,
                                        progress=False)))
    except Exception as e:  # reported by the parent, with what it was
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


class PlainProcess:
    """The plain step in a spawned child; `time(iters, warmup)` returns seconds per step.
    `info`: the child's pid and whether our allocator setting is in effect there (it is not)."""

    def __init__(self, cfg: Any) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker, name="plain-step", daemon=True,
                                 args=(child, asdict(cfg), torch.get_num_threads()))
        self._proc.start()
        child.close()
        self.info: dict[str, Any] = self._reply()

    def _reply(self) -> Any:
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise AlexNetError(
                f"the plain step's process ended (exit code {self._proc.exitcode}) before it "
                "reported; rerun, or pass --no-baseline to time the optimised step alone"
            ) from None
        if status == "error":
            raise AlexNetError(f"the plain step failed in its process: {value}")
        return value

    def time(self, iters: int, warmup: int = 0) -> float:
        self._conn.send((iters, warmup))
        return self._reply()

    def close(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send((0, 0))
            self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._conn.close()
