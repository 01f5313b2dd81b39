"""`alexnet bench train`: images/s of one training step (forward, backward, update) on synthetic
data, the optimised step side by side with the plain eager fp32 step a user would write.

Optimised (what `alexnet.train.loop` does, `alexnet.accel`): on CUDA bf16 autocast,
channels_last, torch.compile, §5's update rule with foreach kernels (`PaperSGD`), the fused LRN
of `alexnet.accel.lrn_triton` (picked automatically by `LocalResponseNorm` on CUDA), cuDNN
autotuning, no host sync per step; on a CPU bf16 autocast where the CPU has native bf16,
channels_last, torch.compile of the model and of the update.
Plain: the same network and weights with `torch.nn.LocalResponseNorm`, fp32, NCHW, eager,
`torch.optim.SGD`. On the CPU both are timed in alternating rounds, the plain step in a process
of its own that starts as a user's script does (`alexnet.bench.plain`).
"""

from __future__ import annotations

import copy
import gc
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from alexnet.accel.cpu import keep_freed_memory
from alexnet.accel.settings import step_settings
from alexnet.bench.plain import (
    COMPILE_MODES,
    PlainProcess,
    TrainBenchConfig,
    make_plain_step,
    plain_inputs,
    replace_lrn,
)
from alexnet.bench.timing import (
    device_name,
    peak_memory_mib,
    reset_peak_memory,
    time_calls,
)
from alexnet.devices import resolve_device
from alexnet.errors import ConfigError
from alexnet.models.local_response_norm import LocalResponseNorm, _fused_lrn, lrn_reference
from alexnet.models.profile import model_stats
from alexnet.train.optim import PaperSGD
from alexnet.train.step import make_train_step


class _ReferenceLRN(nn.Module):
    """`lrn_reference` with a `LocalResponseNorm`'s arguments: no fused kernel."""

    def __init__(self, lrn: LocalResponseNorm) -> None:
        super().__init__()
        self.args = (lrn.size, lrn.alpha, lrn.beta, lrn.k, lrn.alpha_over_n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrn_reference(x, *self.args)


def _validate(cfg: TrainBenchConfig) -> None:
    if cfg.batch_size < 1 or cfg.steps < 1 or cfg.warmup < 0:
        raise ConfigError(f"bench train needs batch_size >= 1, steps >= 1 and warmup >= 0, got "
                          f"{cfg.batch_size}, {cfg.steps}, {cfg.warmup}")
    if cfg.compile_mode not in COMPILE_MODES:
        raise ConfigError(f"unknown compile mode {cfg.compile_mode!r}; valid: "
                          f"{', '.join(COMPILE_MODES)}")


def _time_step(step: Callable[[], None], cfg: TrainBenchConfig, device: torch.device,
               desc: str) -> dict[str, Any]:
    reset_peak_memory(device)
    seconds = time_calls(step, cfg.steps, cfg.warmup, device, desc=desc, progress=cfg.progress)
    return {"images_per_s": cfg.batch_size / seconds, "step_ms": seconds * 1e3,
            "peak_memory_mib": peak_memory_mib(device)}


Timer = Callable[[int, int], float]  # (iters, warmup) -> seconds per call


def _time_interleaved(timers: dict[str, Timer], cfg: TrainBenchConfig,
                      ) -> dict[str, dict[str, Any]]:
    """Each step warmed up, then timed in alternating rounds (CPU: a busy machine slows both
    rows alike); images/s over all rounds, and the spread of the rounds' rates."""
    for name, timer in timers.items():
        if cfg.progress:
            print(f"  {name}: {cfg.warmup} warm-up steps", flush=True)
        timer(1, max(cfg.warmup - 1, 0))
    rounds = max(1, min(cfg.rounds, cfg.steps))
    per_round = [cfg.steps // rounds + (r < cfg.steps % rounds) for r in range(rounds)]
    seconds: dict[str, list[float]] = {name: [] for name in timers}
    for r, n in enumerate(per_round):
        for name, timer in timers.items():
            seconds[name].append(n * timer(n, 0))
        if cfg.progress:
            print(f"  round {r + 1}/{rounds}: " + ", ".join(
                f"{name} {per_round[r] * cfg.batch_size / seconds[name][-1]:.0f} images/s"
                for name in timers), flush=True)
    out = {}
    for name, times in seconds.items():
        rates = [n * cfg.batch_size / t for n, t in zip(per_round, times, strict=True)]
        total = sum(times) / cfg.steps
        out[name] = {"images_per_s": cfg.batch_size / total, "step_ms": total * 1e3,
                     "peak_memory_mib": None, "spread": [min(rates), max(rates)],
                     "rounds": rounds}
    return out


def run_train_bench(cfg: TrainBenchConfig) -> dict[str, Any]:
    """Time the optimised and (unless `cfg.baseline` is False) the plain training step.

    Returns `{"device", "config", "gflop_per_image", "optimized": {...}, "baseline": {...} |
    None, "speedup"}`; each row has `images_per_s`, `step_ms`, `peak_memory_mib` (None on CPU),
    `tflops` (achieved, fwd+bwd ≈ 3× the forward's FLOPs) and the settings it ran with; on the
    CPU the rows are timed in alternating rounds and carry the rounds' `spread` of images/s.
    """
    _validate(cfg)
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    accel = step_settings(device, amp=True if cfg.amp is None else cfg.amp,
                          channels_last=True if cfg.channels_last is None else cfg.channels_last,
                          compile=True if cfg.compile is None else cfg.compile)
    amp, channels_last, compiled = accel.amp, accel.channels_last, accel.compile
    if cfg.channels_last and not cuda and not compiled:
        channels_last = True  # asked for explicitly: measure it even in eager mode
    if not cuda:
        keep_freed_memory()  # process-wide; the plain step runs in its own process, without it
    template, x, y = plain_inputs(cfg)  # as the plain step's own process builds them
    x, y = x.to(device), y.to(device)
    gflop = 3 * model_stats(template, cfg.image_size)["gflops"]  # fwd + bwd (2× fwd)

    def row(result: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
        return result | {"tflops": result["images_per_s"] * gflop / 1e3, "settings": settings}

    plain_settings = {"dtype": "float32", "memory_format": "nchw", "compile": False,
                      "optimizer": "torch.optim.SGD", "lrn": "torch.nn.LocalResponseNorm"}
    baseline, plain_process = None, None
    if cfg.baseline and cuda:
        plain_train_step = make_plain_step(template, device)

        def plain_step() -> None:
            plain_train_step(x, y)
        benchmark = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = False  # torch's default
        baseline = row(_time_step(plain_step, cfg, device, "plain step"), plain_settings)
        torch.backends.cudnn.benchmark = benchmark
        del plain_train_step, plain_step  # the plain model's memory, before the optimised one
        gc.collect()

    model = copy.deepcopy(template)
    if not cfg.fused_lrn:
        replace_lrn(model, _ReferenceLRN)
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
            fused = _fused_lrn()
            lrn_kind = "fused (Triton)" if fused is not None else "reference (no Triton)"
        train_step = make_train_step(  # the training loop's step (alexnet.train.step)
            net, opt, amp=amp, compile_optimizer=accel.compile_optimizer,
            cudagraphs=compiled and cfg.compile_mode == "reduce-overhead")

        def step() -> None:
            train_step(xo, y)
        settings = {"dtype": "bfloat16 autocast" if amp else "float32",
                    "memory_format": "channels_last" if channels_last else "nchw",
                    "compile": cfg.compile_mode if compiled else False,
                    "optimizer": "PaperSGD (compiled)" if accel.compile_optimizer
                    else "PaperSGD (foreach)", "lrn": lrn_kind, "notes": list(accel.notes)}
        if cuda:
            optimized = row(_time_step(step, cfg, device, "optimised step"), settings)
        else:
            timers: dict[str, Timer] = {
                "optimised": lambda n, w: time_calls(step, n, w, device, progress=False)}
            if cfg.baseline:
                plain_process = PlainProcess(cfg)
                timers["plain"] = plain_process.time
            timed = _time_interleaved(timers, cfg)
            optimized = row(timed["optimised"], settings)
            if plain_process is not None:
                baseline = row(timed["plain"], plain_settings | {
                    "notes": ["timed in a process of its own, as a user's script runs"]})
    finally:
        torch.backends.cudnn.benchmark = benchmark
        if plain_process is not None:
            plain_process.close()
    return {"device": device_name(device), "torch": torch.__version__,
            "config": asdict(cfg) | {"device": str(device)}, "gflop_per_image": gflop,
            "optimized": optimized, "baseline": baseline,
            "speedup": optimized["images_per_s"] / baseline["images_per_s"] if baseline
            else None}


def format_train_bench(result: dict[str, Any]) -> str:
    """The result as a small table for the terminal."""
    c = result["config"]
    cpu = c["device"] == "cpu"
    unit, scale = ("GFLOP/s", 1e3) if cpu else ("TFLOP/s", 1.0)
    lines = [f"bench train: model {c['model']}, batch {c['batch_size']}, image "
             f"{c['image_size']}, {c.get('in_channels', 3)} input channel(s), {c['steps']} "
             f"steps after {c['warmup']} warm-up, on {result['device']} (torch "
             f"{result['torch']}); {result['gflop_per_image']:.2f} GFLOP per training image",
             f"{'step':<18} {'images/s':>10} {'step ms':>9} {unit:>8} {'peak MiB':>9}  "
             "settings"]
    for name, key in (("optimised", "optimized"), ("plain eager fp32", "baseline")):
        r = result[key]
        if r is None:
            continue
        mem = "-" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:.0f}"
        s = r["settings"]
        spread = (f"  (rounds: {r['spread'][0]:.0f}-{r['spread'][1]:.0f} images/s)"
                  if r.get("spread") else "")
        lines.append(f"{name:<18} {r['images_per_s']:>10.1f} {r['step_ms']:>9.2f} "
                     f"{r['tflops'] * scale:>8.2f} {mem:>9}  {s['dtype']}, "
                     f"{s['memory_format']}, compile={s['compile']}, {s['optimizer']}, "
                     f"LRN {s['lrn']}{spread}")
        lines += [f"{'':<18} note: {note}" for note in s.get("notes", [])]
    if result["speedup"] is not None:
        lines.append(f"optimised / plain: {result['speedup']:.2f}x")
    return "\n".join(lines)
