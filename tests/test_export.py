"""`alexnet export`: safetensors, ONNX (onnxruntime on CPU) and TorchScript round trips."""

from __future__ import annotations

import warnings

import pytest
import torch

from alexnet.cli import main
from alexnet.errors import AlexNetError, CheckpointError, ConfigError
from alexnet.weights.checkpoint import load_model
from alexnet.weights.export import example_input, export_checkpoint, load_safetensors
from conftest import write_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("x") / "m.pt")


def test_safetensors_round_trip_is_exact(ckpt, tmp_path):
    pytest.importorskip("safetensors")
    r = export_checkpoint(ckpt, "safetensors", tmp_path / "m.safetensors")
    assert r["max_abs_diff"] == 0.0
    model, _ = load_model(ckpt)
    back = load_safetensors(tmp_path / "m.safetensors")
    assert back.config == model.config
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items(),
                               strict=True):
        assert k == k2 and torch.equal(a, b)


def test_onnx_matches_pytorch_with_onnxruntime(ckpt, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from alexnet.weights.export import run_onnx

    r = export_checkpoint(ckpt, "onnx", tmp_path / "m.onnx")
    assert r["max_abs_diff"] is not None and r["bytes"] > 1_000_000
    model, _ = load_model(ckpt)
    x = example_input(model, batch=4, seed=5)  # another batch size than the export's
    with torch.no_grad():
        want = model(x)
    got = run_onnx(tmp_path / "m.onnx", x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-4 * max(1.0, want.abs().max().item()))


def test_torchscript_round_trip(ckpt, tmp_path):
    r = export_checkpoint(ckpt, "torchscript", tmp_path / "m.ts")
    model, _ = load_model(ckpt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in recent releases
        loaded = torch.jit.load(r["path"])
    x = example_input(model, batch=2, seed=3)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_export_errors(ckpt, tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown export format"):
        export_checkpoint(ckpt, "tflite")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(ckpt.read_bytes()[:2048])
    with pytest.raises(CheckpointError, match="truncated"):
        export_checkpoint(cut, "torchscript")
    assert main(["export", str(cut), "--format", "torchscript"]) == 2
    assert "truncated" in capsys.readouterr().err


def test_export_detects_a_wrong_file(ckpt, tmp_path, monkeypatch):
    """The check compares outputs: a writer that corrupts the weights is caught."""
    import alexnet.weights.export as export

    real = export.export_safetensors

    def corrupt(model, path, metadata):
        with torch.no_grad():
            bad = load_model(ckpt)[0]
            bad.classifier[-1].bias.add_(1.0)
        real(bad, path, metadata)

    pytest.importorskip("safetensors")
    monkeypatch.setattr(export, "export_safetensors", corrupt)
    with pytest.raises(AlexNetError, match="differs from the PyTorch model"):
        export_checkpoint(ckpt, "safetensors", tmp_path / "bad.safetensors")


def test_export_refuses_nan_outputs_and_removes_the_file(ckpt, tmp_path, monkeypatch):
    import alexnet.weights.export as export

    pytest.importorskip("safetensors")
    monkeypatch.setattr(export, "load_safetensors",
                        lambda path: (lambda x: torch.full((x.shape[0], 3), float("nan"))))
    out = tmp_path / "nan.safetensors"
    with pytest.raises(AlexNetError, match="differs from the PyTorch model.*nan"):
        export_checkpoint(ckpt, "safetensors", out)
    assert not out.exists()
    with pytest.raises(ConfigError, match="is the checkpoint itself"):
        export_checkpoint(ckpt, "safetensors", ckpt)


def test_cli_export(ckpt, tmp_path, capsys):
    pytest.importorskip("safetensors")
    assert main(["export", str(ckpt), "--format", "safetensors", "--out",
                 str(tmp_path / "o.safetensors")]) == 0
    assert "outputs match PyTorch" in capsys.readouterr().out
