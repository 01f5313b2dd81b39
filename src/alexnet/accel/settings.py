"""Which speed-ups the training step uses on a device: the `amp`, `channels_last` and `compile`
keys of the run config (and of `alexnet bench train`) switch them, on CUDA and CPU alike.

CUDA: bf16 autocast, channels_last, torch.compile of the model.
CPU, chosen by measurement (benchmarks/README.md, 2-core Xeon with AMX-BF16, `paper` at 64 px,
batch 32; one thread, CPU time per step, eager fp32 = 1):
- bf16 autocast only where the CPU has bf16 matrix units (`alexnet.accel.cpu.native_bf16`): emulated
  bf16 is slower than fp32. Eager, bf16 gains nothing (0.9-1.05: the weights are cast every
  step); compiled, it adds ~1.3x.
- channels_last only with compile (eager it costs ~10%; compiled it adds ~1.1x).
- torch.compile of the model and of the optimizer's step (§5's update as one fused loop over
  the weights instead of four passes): together with bf16 and channels_last ~1.6x on one
  thread. Compiling takes about a minute on 2 cores, so a CPU run compiles only when it has at
  least `CPU_COMPILE_MIN_STEPS` steps.
- In the model itself, where oneDNN's bf16 weight gradient is slow: conv layers on maps of at
  most 3×3 (conv3-conv5 at 64 px) and conv1 compute it as one matrix product over the windows
  (`accel/conv_grad.py`); the fc layers, at batches of at most 32, as an fp32 product with no
  bf16 result to cast back (`accel/linear_grad.py`), and the compiled update writes the fc
  weights' bf16 copies that their forward reads instead of casting (`accel/__init__.py`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from alexnet.accel.cpu import native_bf16

CPU_COMPILE_MIN_STEPS = 500  # ~1 min of compiling pays back after a few hundred faster steps


@dataclass(frozen=True)
class StepSettings:
    """What the training step does on one device; `notes` say why a requested one is off."""

    amp: bool  # bf16 autocast around the forward
    channels_last: bool  # model and inputs in NHWC
    compile: bool  # torch.compile of the model
    compile_optimizer: bool  # torch.compile of optimizer.step (CPU: one fused update loop)
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = ["bf16 autocast" if self.amp else "fp32",
                 "channels_last" if self.channels_last else "NCHW",
                 "compiled" if self.compile else "eager"]
        if self.compile_optimizer:
            parts.append("compiled optimizer step")
        return ", ".join(parts) + "".join(f" ({n})" for n in self.notes)


def step_settings(device: torch.device | str, *, amp: bool = True, channels_last: bool = True,
                  compile: bool = True, steps: int | None = None) -> StepSettings:
    """The settings for `device`, given what the config asks for; `steps`: the run's total
    number of training steps (None: long enough to compile)."""
    device = torch.device(device)
    if device.type == "cuda":
        return StepSettings(bool(amp), bool(channels_last), bool(compile), False)
    notes = []
    if amp and not native_bf16():
        notes.append("no native bf16 on this CPU: fp32")
    cpu_amp = bool(amp) and native_bf16()
    cpu_compile = bool(compile) and (steps is None or steps >= CPU_COMPILE_MIN_STEPS)
    if compile and not cpu_compile:
        notes.append(f"eager: {steps} steps do not pay for compiling on the CPU")
    return StepSettings(amp=cpu_amp, channels_last=bool(channels_last) and cpu_compile,
                        compile=cpu_compile, compile_optimizer=cpu_compile,
                        notes=tuple(notes))


def autocast(device: torch.device, amp: bool) -> AbstractContextManager:
    """bf16 autocast on `device` (CUDA or CPU) when `amp`, else nothing."""
    if amp and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
