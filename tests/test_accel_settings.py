"""What the training step uses on a CPU: bf16 only where it is native, compile only for runs
long enough to pay for it, and a compiled §5 update that equals the eager one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alexnet.accel import cpu
from alexnet.accel import settings as accel
from alexnet.accel.settings import CPU_COMPILE_MIN_STEPS, autocast, step_settings
from alexnet.train.optim import PaperSGD


@pytest.fixture
def bf16(monkeypatch: pytest.MonkeyPatch):
    """Pretend the CPU has (True) or lacks (False) native bf16."""

    def set_native(value: bool) -> None:
        monkeypatch.setattr(accel, "native_bf16", lambda: value)

    return set_native


def test_native_bf16_reads_torch_probes_then_cpuinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu.native_bf16.cache_clear()
    for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda: False, raising=False)
    monkeypatch.setattr(cpu, "_cpuinfo_flags", lambda: {"avx512f", "avx2"})
    assert cpu.native_bf16() is False  # AVX-512 without its bf16 extension: emulated
    cpu.native_bf16.cache_clear()
    monkeypatch.setattr(cpu, "_cpuinfo_flags", lambda: {"avx512f", "amx_bf16"})
    assert cpu.native_bf16() is True
    cpu.native_bf16.cache_clear()
    monkeypatch.setattr(cpu, "_cpuinfo_flags", set)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert cpu.native_bf16() is True
    cpu.native_bf16.cache_clear()


def test_cpu_without_native_bf16_falls_back_to_fp32(bf16) -> None:
    bf16(False)
    s = step_settings("cpu", amp=True, channels_last=True, compile=True)
    assert not s.amp and s.compile and s.channels_last and s.compile_optimizer
    assert "fp32" in s.describe() and "no native bf16" in s.describe()
    bf16(True)
    assert step_settings("cpu").amp
    assert not step_settings("cpu", amp=False).amp  # the config key still switches it off


def test_cpu_compiles_only_runs_that_pay_for_it(bf16) -> None:
    bf16(True)
    short = step_settings("cpu", steps=CPU_COMPILE_MIN_STEPS - 1)
    assert not short.compile and not short.compile_optimizer
    assert not short.channels_last  # eager channels_last is slower on the CPU
    assert short.amp  # bf16 needs no compiling
    long = step_settings("cpu", steps=CPU_COMPILE_MIN_STEPS)
    assert long.compile and long.compile_optimizer and long.channels_last
    off = step_settings("cpu", compile=False, steps=10**6)
    assert not off.compile and not off.channels_last


def test_cuda_settings_follow_the_keys() -> None:
    s = step_settings("cuda", amp=True, channels_last=False, compile=True, steps=1)
    assert s.amp and not s.channels_last and s.compile and not s.compile_optimizer


def test_cpu_autocast_runs_matmuls_in_bf16() -> None:
    x = torch.randn(4, 8)
    with autocast(torch.device("cpu"), True):
        assert (x @ x.T).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), False):
        assert (x @ x.T).dtype == torch.float32


@pytest.mark.slow  # compiles: ~10-30 s on 2 cores
def test_compiled_update_equals_the_eager_one() -> None:
    """torch.compile of PaperSGD.step (the CPU's fused update) must move every weight exactly
    as the eager foreach step, across an lr change (a recompile)."""
    torch.manual_seed(0)
    eager_net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    fused_net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    fused_net.load_state_dict(eager_net.state_dict())
    eager = PaperSGD(eager_net.parameters(), lr=0.1)
    fused = PaperSGD(fused_net.parameters(), lr=0.1)
    fused.step = torch.compile(fused.step)
    start = [p.detach().clone() for p in eager_net.parameters()]
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    for i in range(4):
        if i == 2:
            for opt in (eager, fused):
                opt.param_groups[0]["lr"] = 0.01
        for net, opt in ((eager_net, eager), (fused_net, fused)):
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    for a, b, c in zip(eager_net.parameters(), fused_net.parameters(), start, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
        assert not torch.equal(a, c)


def test_the_cpu_fast_path_is_swapped_in_when_a_bf16_cpu_step_is_built():
    """models/ builds plain nn.Conv2d / nn.Linear; make_train_step swaps the fast path's
    layers in (same parameters and names) for the paper family training in bf16 on the CPU."""
    from torch import nn

    from alexnet.accel.conv_grad import WindowGradConv2d
    from alexnet.accel.linear_grad import Fp32GradLinear
    from alexnet.models import create_model
    from alexnet.train.optim import PaperSGD
    from alexnet.train.step import make_train_step

    def kinds(model: nn.Module) -> set[type]:
        return {type(m) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)}

    paper = create_model("paper", num_classes=3, image_size=64)
    assert kinds(paper) == {nn.Conv2d, nn.Linear}
    keys = list(paper.state_dict())
    make_train_step(paper, PaperSGD(paper.parameters()), amp=False)
    assert kinds(paper) == {nn.Conv2d, nn.Linear}  # fp32: nothing to speed up
    make_train_step(paper, PaperSGD(paper.parameters()), amp=True)
    assert kinds(paper) == {WindowGradConv2d, Fp32GradLinear}
    assert list(paper.state_dict()) == keys
    owt = create_model("owt", num_classes=3, image_size=64)
    make_train_step(owt, PaperSGD(owt.parameters()), amp=True)
    assert kinds(owt) == {nn.Conv2d, nn.Linear}  # measured on the paper family only
