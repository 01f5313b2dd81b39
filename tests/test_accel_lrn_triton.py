"""The fused Triton LRN (`alexnet.accel.lrn_triton`) against `lrn_reference` and its autograd.

On CPU the kernels run in Triton's interpreter: TRITON_INTERPRET=1 must be set before triton is
imported, so the comparisons run in a child process (this file's `__main__`), which prints one
JSON record per case. On a GPU the same cases run natively (`gpu` marker).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import zlib

import pytest
import torch

pytest.importorskip("triton")

# (size, alpha_over_n, layout, dtype, alpha, k, scale, groups): windows odd, even and 1; both α
# conventions; NCHW, channels_last and a non-contiguous slice; a strong α (the normalisation
# matters) and the paper's values on conv1-sized activations (§3.3: k=2, α=1e-4, β=0.75);
# windows kept inside each tower (groups=2).
CASES = [
    (size, aon, layout, dtype, 0.5, 1.0, 3.0, 1)
    for size, aon, layout, dtype in itertools.product(
        (5, 4, 1), (True, False), ("nchw", "channels_last", "sliced"), ("float32", "bfloat16"))
] + [(5, aon, "nchw", "float32", 1e-4, 2.0, 30.0, 1) for aon in (True, False)] + [
    (size, True, layout, "float32", 0.5, 1.0, 3.0, 2)
    for size, layout in itertools.product((5, 4), ("nchw", "channels_last"))] + [
    # W = 1 with a W stride that is not 1: contiguous by PyTorch's rule (a size-1 dimension's
    # stride is ignored), so the kernel must not trust that stride.
    (5, True, "w1", dtype, 0.5, 1.0, 3.0, 1) for dtype in ("float32", "bfloat16")]
TOL = {"float32": 2e-6, "bfloat16": 2e-2}  # relative to the largest reference value


def case_id(case: tuple) -> str:
    return "-".join(str(v) for v in case)


def run_case(case: tuple, device: str) -> dict:
    """Max errors of the fused LRN's output and input gradient, relative to the largest value
    of the fp64 reference (output) and its autograd (gradient)."""
    from alexnet.accel.lrn_triton import lrn
    from alexnet.models.local_response_norm import lrn_reference

    size, aon, layout, dtype, alpha, k, scale, groups = case
    gen = torch.Generator().manual_seed(zlib.crc32(case_id(case).encode()))
    channels = 11 if groups == 1 else 14  # not a power of two: the channel tile is masked
    full = torch.randn(2, channels + 2, 5, 6, generator=gen) * scale  # (B, C+2, H, W)
    x = full.to(device, getattr(torch, dtype))
    x = x[:, 1:-1] if layout == "sliced" else x[:, :channels]  # (B, 11, 5, 6)
    if layout == "w1":  # (B, 11, 6, 1) with strides (66, 6, 1, 6): is_contiguous() is True
        x = x[:, :, :1, :].contiguous().transpose(2, 3)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    grad = torch.randn(x.shape, generator=gen).to(device, x.dtype)

    y = lrn(x, size, alpha, 0.75, k, aon, groups=groups)
    y.backward(grad)
    x64 = x.detach().double().requires_grad_(True)
    y64 = torch.cat([lrn_reference(part, size, alpha, 0.75, k, aon)  # one tower at a time
                     for part in x64.chunk(groups, dim=1)], dim=1)
    y64.backward(grad.double())

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a.double() - b).abs().max() / b.abs().max())

    return {"id": case_id(case), "y_err": rel(y.detach(), y64.detach()),
            "grad_err": rel(x.grad, x64.grad), "dtype_ok": y.dtype == x.dtype,
            "layout_kept": y.is_contiguous(memory_format=torch.channels_last)
            == (layout == "channels_last")}


def run_compile_case(device: str) -> dict:
    """The custom ops under torch.compile: one graph (fullgraph), same output and gradient."""
    from alexnet.accel.lrn_triton import lrn

    x = (torch.randn(2, 8, 4, 4) * 3).to(device).requires_grad_(True)
    fn = torch.compile(lambda t: lrn(t, 5, 0.5, 0.75, 1.0, True).relu().sum(),
                       backend="aot_eager" if device == "cpu" else "inductor", fullgraph=True)
    fn(x).backward()
    got = x.grad.clone()
    x.grad = None
    lrn(x, 5, 0.5, 0.75, 1.0, True).relu().sum().backward()
    return {"id": "compile", "grad_err": float((got - x.grad).abs().max()), "y_err": 0.0,
            "dtype_ok": True, "layout_kept": True}


def run_all(device: str) -> dict[str, dict]:
    records = [run_case(c, device) for c in CASES] + [run_compile_case(device)]
    return {r["id"]: r for r in records}


@pytest.fixture(scope="module")
def interpreted() -> dict[str, dict]:
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check(record: dict, dtype: str) -> None:
    assert record["dtype_ok"], "output dtype differs from the input's"
    assert record["layout_kept"], "channels_last input should give a channels_last output"
    assert record["y_err"] < TOL[dtype], record
    assert record["grad_err"] < TOL[dtype], record


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_interpreted_kernel_matches_reference(interpreted: dict, case: tuple) -> None:
    check(interpreted[case_id(case)], case[3])


def test_interpreted_kernel_under_compile(interpreted: dict) -> None:
    assert interpreted["compile"]["grad_err"] < 1e-6


def test_available_rejects_what_the_kernel_cannot_run() -> None:
    from alexnet.accel import lrn_triton as fused

    if fused._INTERPRET:  # this process imported triton in interpreter mode
        pytest.skip("TRITON_INTERPRET is set in the test process")
    assert not fused.available(torch.zeros(1, 4, 2, 2))  # CPU without the interpreter
    with pytest.raises(ValueError, match="CUDA"):
        fused.lrn(torch.zeros(1, 4, 2, 2))


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_cuda_kernel_matches_reference(case: tuple) -> None:
    check(run_case(case, "cuda"), case[3])


@pytest.mark.gpu
def test_cuda_kernel_under_inductor() -> None:
    assert run_compile_case("cuda")["grad_err"] < 1e-5


@pytest.mark.gpu
def test_cuda_module_uses_fused_kernel_on_conv1_shape() -> None:
    from alexnet.accel import lrn_triton as fused
    from alexnet.models.local_response_norm import LocalResponseNorm, lrn_reference

    x = (torch.randn(8, 96, 55, 55, device="cuda") * 10).relu()  # conv1 after ReLU (§3.3)
    assert fused.available(x) and fused.available(x.bfloat16())
    for dtype in (torch.float32, torch.bfloat16):
        xd = x.to(dtype).contiguous(memory_format=torch.channels_last)
        got = LocalResponseNorm()(xd)
        want = lrn_reference(xd.double())
        assert float((got.double() - want).abs().max() / want.abs().max()) < TOL[
            str(dtype).removeprefix("torch.")]


if __name__ == "__main__":
    print(json.dumps(run_all("cpu")))
