"""`alexnet bench`: the training-step and LRN benchmarks run on CPU, compare like with like, and
the CLI prints them; `bench data` hands over to alexnet.data.loader_speed.bench_loader."""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import types

import pytest
import torch
import torch.nn.functional as F

from alexnet.bench.lrn_speed import LRNBenchConfig, run_lrn_bench
from alexnet.bench.plain import TrainBenchConfig, plain_lrn
from alexnet.bench.timing import time_calls
from alexnet.bench.train_speed import run_train_bench
from alexnet.cli import main
from alexnet.errors import AlexNetError, ConfigError
from alexnet.models import LocalResponseNorm, create_model
from alexnet.train.optim import PaperSGD
from alexnet.train.step import make_train_step

TINY = {"image_size": 64, "batch_size": 2, "steps": 1, "warmup": 1, "device": "cpu",
        "progress": False, "compile": False}  # compiling takes a minute on 2 cores


@pytest.mark.parametrize("alpha_over_n", [True, False])
def test_plain_baseline_computes_the_same_network(alpha_over_n: bool) -> None:
    """The plain step's torch.nn.LocalResponseNorm must be our LRN in either α convention."""
    model = create_model("paper", image_size=64, lrn_alpha_over_n=alpha_over_n).double().eval()
    plain = plain_lrn(copy.deepcopy(model))
    assert sum(isinstance(m, torch.nn.LocalResponseNorm) for m in plain.modules()) == 2
    assert not any(isinstance(m, LocalResponseNorm) for m in plain.modules())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64) * 50  # large: the α term matters
    with torch.no_grad():
        want = model.features(x)
        torch.testing.assert_close(plain.features(x), want, rtol=1e-10, atol=1e-10)
        other = plain_lrn(create_model("paper", image_size=64,
                                       lrn_alpha_over_n=not alpha_over_n).double().eval())
        other.load_state_dict(model.state_dict())
        assert (other.features(x) - want).abs().max() > 1e-4 * want.abs().max()


@pytest.mark.parametrize("native", [True, False])
def test_train_bench_runs_both_steps_on_cpu(native: bool, monkeypatch: pytest.MonkeyPatch,
                                            ) -> None:
    """Both rows in one run, timed in alternating rounds; bf16 only where the CPU has it."""
    from alexnet.accel import settings as accel
    from alexnet.bench.train_speed import format_train_bench

    monkeypatch.setattr(accel, "native_bf16", lambda: native)
    result = run_train_bench(TrainBenchConfig(model="paper", **(TINY | {"steps": 3,
                                                                         "rounds": 3})))
    opt, base = result["optimized"], result["baseline"]
    for row in (opt, base):
        assert row["images_per_s"] > 0 and row["step_ms"] > 0
        assert row["images_per_s"] == pytest.approx(2 / (row["step_ms"] / 1e3))
        assert row["peak_memory_mib"] is None  # CPU
        assert row["rounds"] == 3 and row["spread"][0] <= row["images_per_s"] * 1.001
        assert row["spread"][1] >= row["images_per_s"] * 0.999
    assert result["speedup"] == pytest.approx(opt["images_per_s"] / base["images_per_s"])
    assert base["settings"]["lrn"] == "torch.nn.LocalResponseNorm"
    assert base["settings"]["optimizer"] == "torch.optim.SGD"
    assert base["settings"]["dtype"] == "float32" and base["settings"]["compile"] is False
    assert opt["settings"]["optimizer"].startswith("PaperSGD")
    assert opt["settings"]["compile"] is False  # switched off in TINY
    assert opt["settings"]["dtype"] == ("bfloat16 autocast" if native else "float32")
    assert result["gflop_per_image"] > 0
    table = format_train_bench(result)
    assert "optimised " in table and "plain eager fp32" in table and "GFLOP/s" in table
    assert ("no native bf16" in table) is not native


def test_plain_step_runs_in_a_process_of_its_own_without_our_allocator_setting() -> None:
    """A user's script runs with glibc's defaults; the benchmark's process keeps freed
    memory (alexnet.accel.cpu), which would make the plain row faster than the user's step."""
    from alexnet.accel import cpu
    from alexnet.bench.plain import PlainProcess

    cpu.keep_freed_memory()
    child = PlainProcess(TrainBenchConfig(model="paper", **TINY))
    try:
        assert child.info["pid"] != os.getpid()
        assert child.info["keeps_freed_memory"] is False
        assert child.time(2, 1) > 0
    finally:
        child.close()


def test_a_failing_plain_process_says_what_failed() -> None:
    from alexnet.bench.plain import PlainProcess

    with pytest.raises(AlexNetError, match="plain step failed in its process: .*unknown model"):
        PlainProcess(TrainBenchConfig(model="no-such-model", **TINY))


def test_timed_step_trains() -> None:
    """A step that did nothing would be fast: the timed step must update every weight with
    §5's rule and lower the loss on a repeated batch."""
    torch.manual_seed(0)
    model = create_model("owt", num_classes=10, image_size=64)
    model.eval()  # no dropout: the loss on one batch is deterministic
    x, y = torch.randn(4, 3, 64, 64), torch.randint(0, 10, (4,))
    opt = PaperSGD(model.optim_groups(), lr=0.01)
    step = make_train_step(model, opt, amp=False)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        loss0 = F.cross_entropy(model(x), y)
    for _ in range(3):
        step(x, y)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert all(p.grad is None for p in model.parameters())  # zeroed after the update
    with torch.no_grad():
        assert F.cross_entropy(model(x), y) < loss0


def test_train_bench_without_baseline() -> None:
    result = run_train_bench(TrainBenchConfig(model="paper", baseline=False, fused_lrn=False,
                                              **TINY))
    assert result["baseline"] is None and result["speedup"] is None
    assert result["optimized"]["settings"]["lrn"] == "reference"
    assert result["optimized"]["images_per_s"] > 0


def test_train_bench_rejects_bad_options() -> None:
    with pytest.raises(ConfigError, match="compile mode"):
        run_train_bench(TrainBenchConfig(compile_mode="fastest", **TINY))
    with pytest.raises(ConfigError, match="steps"):
        run_train_bench(TrainBenchConfig(**(TINY | {"steps": 0})))


def test_lrn_bench_rows_on_cpu() -> None:
    result = run_lrn_bench(LRNBenchConfig(shape=(2, 16, 9, 9), device="cpu", iters=2, warmup=0,
                                          progress=False))
    names = [r["name"] for r in result["rows"]]
    assert names == ["relu", "reference", "torch.nn.functional"]  # no fused kernel on CPU
    assert result["rows"][0]["vs_relu"] == 1.0
    assert all(r["ms"] > 0 for r in result["rows"])
    assert result["max_error"] is None
    bf16 = run_lrn_bench(LRNBenchConfig(shape=(1, 8, 5, 5), dtype="bfloat16", device="cpu",
                                        iters=1, warmup=0, progress=False))
    ref = next(r for r in bf16["rows"] if r["name"] == "reference")
    assert ref["ms"] > 0  # torch's own LRN may lack a CPU bf16 kernel: reported, not fatal
    assert all(r["ms"] is not None or r["error"] for r in bf16["rows"])
    with pytest.raises(ConfigError, match="dtype"):
        run_lrn_bench(LRNBenchConfig(dtype="int8", device="cpu"))


def test_time_calls_excludes_warmup_and_averages() -> None:
    calls = []

    def work() -> None:
        calls.append(1)
        time.sleep(0.02 if len(calls) == 1 else 0.005)  # a slow first (warm-up) call

    per_call = time_calls(work, iters=3, warmup=1, device=torch.device("cpu"), progress=False)
    assert len(calls) == 4
    assert 0.004 < per_call < 0.015


def test_cli_bench_train_json(capsys: pytest.CaptureFixture) -> None:
    rc = main(["bench", "train", "--model", "owt", "--image-size", "64", "--batch-size", "2",
               "--steps", "1", "--warmup", "0", "--device", "cpu", "--no-compile", "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["model"] == "owt" and result["config"]["batch_size"] == 2
    assert result["baseline"]["images_per_s"] > 0


def test_cli_bench_lrn_table(capsys: pytest.CaptureFixture) -> None:
    rc = main(["bench", "lrn", "--shape", "1", "8", "5", "5", "--device", "cpu", "--iters", "1",
               "--alpha-convention", "alpha"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "1x8x5x5 float32" in out and "x ReLU" in out and "reference" in out


def test_cli_bench_data_calls_bench_loader(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    seen = {}

    def bench_loader(source, *, batch_size, device, num_batches):
        seen.update(source=source, batch_size=batch_size, device=device, num_batches=num_batches)
        return {"images_per_s": 1234.5, "batches": num_batches}

    fake = types.ModuleType("alexnet.data.loader_speed")
    fake.bench_loader = bench_loader
    monkeypatch.setitem(sys.modules, "alexnet.data.loader_speed", fake)
    assert main(["bench", "data", "some/folder", "--batch-size", "4", "--batches", "3",
                 "--device", "cpu"]) == 0
    assert seen == {"source": "some/folder", "batch_size": 4, "device": torch.device("cpu"),
                    "num_batches": 3}
    out = capsys.readouterr().out
    assert "1234" in out and "batches" in out


@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_train_bench_uses_every_optimisation() -> None:
    result = run_train_bench(TrainBenchConfig(model="paper", batch_size=32, steps=3, warmup=3,
                                              device="cuda", progress=False))
    s = result["optimized"]["settings"]
    assert s["dtype"] == "bfloat16 autocast" and s["memory_format"] == "channels_last"
    assert s["compile"] == "default" and s["lrn"] == "fused (Triton)"
    assert result["optimized"]["peak_memory_mib"] > 0
