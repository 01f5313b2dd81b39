"""Training's validation error is `alexnet eval`'s and `alexnet report`'s error of the same
checkpoint: a tiny run on a registered in-memory source, then the three numbers compared."""

from __future__ import annotations

import json
import shutil

import torch

import alexnet.evaluation.report as report
from alexnet.cli import main
from alexnet.train.loop import train
from alexnet.train.run_config import resolve_config


def test_final_validation_error_equals_eval_and_report_of_last_pt(tmp_path, separable_data,
                                                                  monkeypatch, capsys):
    # 32 training and 16 validation images (64², grey), whole images (no crop); 8 classes, so
    # that the top-5 error is not 0 by construction. batch_size 16 = the validation split:
    # training validates in one batch of 16, as `alexnet eval` (batch size 128) does, so even
    # the forward pass is the same computation.
    data = separable_data(n=32, val=16, size=64, classes=8)
    cfg = resolve_config({"recipe": "test", "model": {"name": "paper", "image_size": 64},
                          "epochs": 2, "batch_size": 16, "log_every": 1, "quick": False,
                          "deterministic": True, "optim": {"lr": 0.001}, "device": "cpu",
                          "amp": False, "compile": False, "data": data})
    run_dir = tmp_path / "run"
    train(cfg, run_dir)
    capsys.readouterr()

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if r["split"] == "val"][-1]
    assert logged["epoch"] == 1
    stored = torch.load(run_dir / "last.pt", weights_only=True)["metrics"]["val"]
    assert (stored["top1_err"], stored["top5_err"]) == (logged["top1_err"], logged["top5_err"])

    # Equal, not close: the loop's validation (train/loop.py `validate`) and `alexnet eval`
    # (checkpoints_eval.py) call the same `alexnet.evaluation.evaluate` on centre views, in
    # fp32 (amp false here; eval's default), NCHW (no compile, so no channels_last on CPU),
    # with the same weights (last.pt is saved right after that validation) on the same data
    # (eval rebuilds the loaders from last.pt's data config through the same `build_loaders`:
    # same images, same statistics, so the same normalisation). The errors are counts of hits
    # divided by the image count, so no summation order can change them.
    assert main(["eval", str(run_dir / "last.pt"), "--views", "center", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 16 and out["data"] == data["source"]
    assert (out["top1_err"], out["top5_err"]) == (logged["top1_err"], logged["top5_err"])

    # `alexnet report` evaluates the run folder's best.pt (else last.pt): on a copy of the
    # folder without best.pt it evaluates last.pt, with the same `evaluate` on the same data.
    only_last = tmp_path / "only-last"
    shutil.copytree(run_dir, only_last, ignore=shutil.ignore_patterns("best.pt"))
    real, seen = report.evaluate_for_report, []

    def spy(*args, **kwargs):  # what build_report measured, before it is formatted as text
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(report, "evaluate_for_report", spy)
    r = report.build_report(only_last, tmp_path / "rep", progress=False, device="cpu")
    assert r["evaluated"] and "with center views" in r["status"]  # no crop: no ten views
    assert seen[0].errors["center"] == {1: logged["top1_err"], 5: logged["top5_err"]}
    rows = {line.split(" | ")[0]: line.split(" | ")[1:3] for line in r["table"].splitlines()}
    evaluated = next(v for k, v in rows.items() if "last.pt evaluated on" in k)
    assert evaluated == rows["| this run: training log, last epoch (2)"]


def test_eval_amp_reproduces_a_bf16_validation(tmp_path, separable_data, capsys):
    """With amp=true, training validates under bf16 autocast where the device runs bf16
    natively (accel/settings.py); `alexnet eval --amp` applies the same rule, so it gives the
    logged numbers on any CPU (fp32 on both sides where bf16 is not native)."""
    data = separable_data(n=32, val=16, size=64, classes=8)
    cfg = resolve_config({"recipe": "test", "model": {"name": "paper", "image_size": 64},
                          "epochs": 1, "batch_size": 16, "log_every": 1, "quick": False,
                          "optim": {"lr": 0.001}, "device": "cpu", "amp": True,
                          "compile": False, "data": data})
    run_dir = tmp_path / "run"
    train(cfg, run_dir)
    capsys.readouterr()
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()
              if '"val"' in line][-1]
    assert main(["eval", str(run_dir / "last.pt"), "--views", "center", "--amp", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["top1_err"], out["top5_err"]) == (logged["top1_err"], logged["top5_err"])
