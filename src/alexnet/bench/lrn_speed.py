"""`alexnet bench lrn`: forward+backward time of the LRN (§3.3) next to a ReLU on the same tensor.

Rows: ReLU (the floor: one read and one write each way), the fused Triton kernel (CUDA),
`lrn_reference` (our plain PyTorch), `torch.nn.functional.local_response_norm` (what a user
would write) and, with `compile_reference`, `lrn_reference` under torch.compile. The target
(benchmarks/README.md): fused LRN fwd+bwd <= 2x the ReLU's on one H100.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from alexnet.bench.timing import device_name, time_calls
from alexnet.devices import resolve_device
from alexnet.errors import ConfigError
from alexnet.models.local_response_norm import _fused_lrn, lrn_reference

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LRNBenchConfig:
    shape: tuple[int, int, int, int] = (128, 96, 55, 55)  # conv1's output at batch 128 (§3.5)
    dtype: str = "float32"
    channels_last: bool = False
    device: str = "auto"
    iters: int | None = None  # None: 50 on CUDA, 3 on CPU
    warmup: int | None = None  # None: 10 on CUDA, 1 on CPU
    size: int = 5  # §3.3: n=5, k=2, α=1e-4, β=0.75
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0
    alpha_over_n: bool = True
    compile_reference: bool = False
    progress: bool = True


def _fwd_bwd(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
             grad: torch.Tensor) -> Callable[[], object]:
    def call() -> object:
        y = fn(x)
        return torch.autograd.grad(y, x, grad)

    return call


def run_lrn_bench(cfg: LRNBenchConfig) -> dict[str, Any]:
    """Milliseconds per forward+backward of each implementation and its ratio to the ReLU's.

    Returns `{"device", "config", "rows": [{"name", "ms", "vs_relu"}], "max_error"}`, with
    `max_error` the largest |fused - reference| output difference (None without the kernel).
    """
    if cfg.dtype not in DTYPES:
        raise ConfigError(f"unknown dtype {cfg.dtype!r}; valid: {', '.join(DTYPES)}")
    if len(cfg.shape) != 4 or min(cfg.shape) < 1:
        raise ConfigError(f"--shape needs four positive sizes B C H W, got {cfg.shape}")
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    iters = cfg.iters or (50 if cuda else 3)
    warmup = cfg.warmup if cfg.warmup is not None else (10 if cuda else 1)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    gen = torch.Generator(device=device).manual_seed(0)
    # ReLU outputs of conv1 (non-negative, tens at most), as the LRN sees them in the net.
    x = (torch.randn(cfg.shape, device=device, generator=gen) * 10).relu()
    x = x.to(DTYPES[cfg.dtype]).contiguous(memory_format=fmt).requires_grad_(True)
    grad = torch.randn(cfg.shape, device=device, generator=gen).to(x.dtype)
    grad = grad.contiguous(memory_format=fmt)
    args = (cfg.size, cfg.alpha, cfg.beta, cfg.k, cfg.alpha_over_n)
    torch_alpha = cfg.alpha if cfg.alpha_over_n else cfg.alpha * cfg.size

    impls: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": F.relu}
    fused = _fused_lrn() if cuda else None
    if fused is not None and fused.available(x):
        impls["fused (Triton)"] = lambda t: fused.lrn(t, *args)
    impls["reference"] = lambda t: lrn_reference(t, *args)
    impls["torch.nn.functional"] = lambda t: F.local_response_norm(
        t, cfg.size, torch_alpha, cfg.beta, cfg.k)
    if cfg.compile_reference:
        impls["reference (compiled)"] = torch.compile(lambda t: lrn_reference(t, *args))

    rows = []
    for name, fn in impls.items():
        try:
            seconds = time_calls(_fwd_bwd(fn, x, grad), iters, warmup, device, desc=name,
                                 progress=cfg.progress)
        except (RuntimeError, NotImplementedError) as err:  # e.g. torch's LRN: no CPU bf16
            rows.append({"name": name, "ms": None, "error": str(err).splitlines()[0]})
            continue
        rows.append({"name": name, "ms": seconds * 1e3})
    relu_ms = rows[0]["ms"]
    for r in rows:
        r["vs_relu"] = None if r["ms"] is None else r["ms"] / relu_ms
    max_error = None
    if "fused (Triton)" in impls:
        with torch.no_grad():
            max_error = float((impls["fused (Triton)"](x).float()
                               - impls["reference"](x).float()).abs().max())
    return {"device": device_name(device), "torch": torch.__version__,
            "config": asdict(cfg) | {"device": str(device), "iters": iters, "warmup": warmup},
            "rows": rows, "max_error": max_error}


def format_lrn_bench(result: dict[str, Any]) -> str:
    c = result["config"]
    shape = "x".join(str(s) for s in c["shape"])
    layout = "channels_last" if c["channels_last"] else "nchw"
    lines = [f"bench lrn: {shape} {c['dtype']} {layout}, forward+backward, {c['iters']} iters "
             f"after {c['warmup']} warm-up, on {result['device']} (torch {result['torch']})",
             f"{'implementation':<22} {'ms':>9} {'x ReLU':>7}"]
    for r in result["rows"]:
        if r["ms"] is None:
            lines.append(f"{r['name']:<22} {'n/a':>9} {'':>7}  ({r['error']})")
        else:
            lines.append(f"{r['name']:<22} {r['ms']:>9.3f} {r['vs_relu']:>7.2f}")
    if result["max_error"] is not None:
        lines.append(f"max |fused - reference| output difference: {result['max_error']:.3g}")
    return "\n".join(lines)
