"""`alexnet bench train`: images/s of one training step (forward, backward, update) on synthetic
data, the optimised step side by side with the plain eager fp32 step a user would write.

Optimised (what `alexnet.train.loop` does on CUDA): bf16 autocast, channels_last, torch.compile,
§5's update rule with foreach kernels (`PaperSGD`), the fused LRN of `alexnet.kernels.lrn`
(picked automatically by `LocalResponseNorm` on CUDA), cuDNN autotuning, no host sync per step.
Plain: the same network and weights with `torch.nn.LocalResponseNorm`, fp32, NCHW, eager,
`torch.optim.SGD`. On CPU the optimisations that need CUDA are off, so both rows are close.
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from alexnet.bench.timing import (
    device_name,
    peak_memory_mib,
    reset_peak_memory,
    resolve_device,
    time_calls,
)
from alexnet.errors import ConfigError
from alexnet.models import create_model
from alexnet.models.lrn import LocalResponseNorm, lrn_reference
from alexnet.models.profile import model_stats
from alexnet.train.optim import PaperSGD

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainBenchConfig:
    model: str = "paper"
    batch_size: int = 128  # §5
    steps: int = 50  # timed steps per configuration
    warmup: int = 10  # untimed steps first (compilation, cuDNN autotuning, allocator)
    image_size: int = 224  # §2; 64-112 make the CPU run fast
    num_classes: int = 1000
    device: str = "auto"
    amp: bool | None = None  # bf16 autocast; None: on for CUDA
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool | None = None  # torch.compile of the model; None: on for CUDA
    compile_mode: str = "default"  # "reduce-overhead" adds CUDA graphs
    fused_lrn: bool = True  # False: the optimised step keeps the reference LRN
    baseline: bool = True  # also time the plain eager fp32 step
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


class _ReferenceLRN(nn.Module):
    """`lrn_reference` with a `LocalResponseNorm`'s arguments: no fused kernel."""

    def __init__(self, lrn: LocalResponseNorm) -> None:
        super().__init__()
        self.args = (lrn.size, lrn.alpha, lrn.beta, lrn.k, lrn.alpha_over_n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrn_reference(x, *self.args)


def _replace_lrn(model: nn.Module, make: Callable[[LocalResponseNorm], nn.Module]) -> nn.Module:
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LocalResponseNorm):
                setattr(parent, name, _PerTower(make(child), getattr(child, "groups", 1)))
    return model


def plain_lrn(model: nn.Module) -> nn.Module:
    """`model` with every `LocalResponseNorm` replaced, in place, by `torch.nn.LocalResponseNorm`
    (α/n convention; the paper's α becomes α·size there), applied per tower when the LRN has
    groups."""
    return _replace_lrn(model, lambda m: nn.LocalResponseNorm(
        m.size, m.alpha if m.alpha_over_n else m.alpha * m.size, m.beta, m.k))


def _validate(cfg: TrainBenchConfig) -> None:
    if cfg.batch_size < 1 or cfg.steps < 1 or cfg.warmup < 0:
        raise ConfigError(f"bench train needs batch_size >= 1, steps >= 1 and warmup >= 0, got "
                          f"{cfg.batch_size}, {cfg.steps}, {cfg.warmup}")
    if cfg.compile_mode not in COMPILE_MODES:
        raise ConfigError(f"unknown compile mode {cfg.compile_mode!r}; valid: "
                          f"{', '.join(COMPILE_MODES)}")


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                  y: torch.Tensor, *, amp: bool, cudagraphs: bool) -> Callable[[], None]:
    """One forward+backward+update on the fixed batch (x, y), as the training loop does it:
    bf16 autocast around the forward when `amp` (CUDA), gradients set to None after the update,
    no host synchronisation."""
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if amp and x.is_cuda
                else nullcontext())
    mark_step = getattr(torch.compiler, "cudagraph_mark_step_begin", None)

    def step() -> None:
        if cudagraphs and mark_step is not None:
            mark_step()  # CUDA graph trees: this step may overwrite the last one's outputs
        with autocast:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _time_step(step: Callable[[], None], cfg: TrainBenchConfig, device: torch.device,
               desc: str) -> dict[str, Any]:
    reset_peak_memory(device)
    seconds = time_calls(step, cfg.steps, cfg.warmup, device, desc=desc, progress=cfg.progress)
    return {"images_per_s": cfg.batch_size / seconds, "step_ms": seconds * 1e3,
            "peak_memory_mib": peak_memory_mib(device)}


def run_train_bench(cfg: TrainBenchConfig) -> dict[str, Any]:
    """Time the optimised and (unless `cfg.baseline` is False) the plain training step.

    Returns `{"device", "config", "gflop_per_image", "optimized": {...}, "baseline": {...} |
    None, "speedup"}`; each row has `images_per_s`, `step_ms`, `peak_memory_mib` (None on CPU),
    `tflops` (achieved, fwd+bwd ≈ 3× the forward's FLOPs) and the settings it ran with.
    """
    _validate(cfg)
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    amp = cuda if cfg.amp is None else cfg.amp
    channels_last = cuda if cfg.channels_last is None else cfg.channels_last
    compiled = cuda if cfg.compile is None else cfg.compile
    torch.manual_seed(cfg.seed)
    template = create_model(cfg.model, num_classes=cfg.num_classes, in_channels=3,
                            image_size=cfg.image_size)
    gflop = 3 * model_stats(template, cfg.image_size)["gflops"]  # fwd + bwd (2× fwd)
    x = torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device=device)
    y = torch.randint(0, cfg.num_classes, (cfg.batch_size,), device=device)

    def row(result: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
        return result | {"tflops": result["images_per_s"] * gflop / 1e3, "settings": settings}

    baseline = None
    if cfg.baseline:
        model = plain_lrn(copy.deepcopy(template)).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        benchmark = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = False  # torch's default
        step = training_step(model, opt, x, y, amp=False, cudagraphs=False)
        baseline = row(_time_step(step, cfg, device, "plain step"),
                       {"dtype": "float32", "memory_format": "nchw", "compile": False,
                        "optimizer": "torch.optim.SGD", "lrn": "torch.nn.LocalResponseNorm"})
        torch.backends.cudnn.benchmark = benchmark
        del model, opt, step
        gc.collect()

    model = copy.deepcopy(template)
    if not cfg.fused_lrn:
        _replace_lrn(model, _ReferenceLRN)
    model = model.to(device)
    xo = x
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        xo = x.contiguous(memory_format=torch.channels_last)
    opt = PaperSGD(model.optim_groups(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    net = torch.compile(model, mode=cfg.compile_mode) if compiled else model
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = cuda
    try:
        lrn_kind = "reference"
        if cfg.fused_lrn and cuda:
            from alexnet.models.lrn import _fused_lrn

            fused = _fused_lrn()
            lrn_kind = "fused (Triton)" if fused is not None else "reference (no Triton)"
        step = training_step(net, opt, xo, y, amp=amp,
                             cudagraphs=compiled and cfg.compile_mode == "reduce-overhead")
        optimized = row(_time_step(step, cfg, device, "optimised step"),
                        {"dtype": "bfloat16 autocast" if amp and cuda else "float32",
                         "memory_format": "channels_last" if channels_last else "nchw",
                         "compile": cfg.compile_mode if compiled else False,
                         "optimizer": "PaperSGD (foreach)", "lrn": lrn_kind})
    finally:
        torch.backends.cudnn.benchmark = benchmark
    return {"device": device_name(device), "torch": torch.__version__,
            "config": asdict(cfg) | {"device": str(device)}, "gflop_per_image": gflop,
            "optimized": optimized, "baseline": baseline,
            "speedup": optimized["images_per_s"] / baseline["images_per_s"] if baseline
            else None}


def format_train_bench(result: dict[str, Any]) -> str:
    """The result as a small table for the terminal."""
    c = result["config"]
    lines = [f"bench train: model {c['model']}, batch {c['batch_size']}, image "
             f"{c['image_size']}, {c['steps']} steps after {c['warmup']} warm-up, on "
             f"{result['device']} (torch {result['torch']}); "
             f"{result['gflop_per_image']:.2f} GFLOP per training image",
             f"{'step':<18} {'images/s':>10} {'step ms':>9} {'TFLOP/s':>8} {'peak MiB':>9}  "
             "settings"]
    for name, key in (("optimised", "optimized"), ("plain eager fp32", "baseline")):
        r = result[key]
        if r is None:
            continue
        mem = "-" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:.0f}"
        s = r["settings"]
        lines.append(f"{name:<18} {r['images_per_s']:>10.1f} {r['step_ms']:>9.2f} "
                     f"{r['tflops']:>8.2f} {mem:>9}  {s['dtype']}, {s['memory_format']}, "
                     f"compile={s['compile']}, {s['optimizer']}, LRN {s['lrn']}")
    if result["speedup"] is not None:
        lines.append(f"optimised / plain: {result['speedup']:.2f}x")
    return "\n".join(lines)
