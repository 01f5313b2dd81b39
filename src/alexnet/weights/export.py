"""`alexnet export`: a checkpoint's model as safetensors, ONNX or TorchScript, each written file
loaded back and its outputs compared with the PyTorch model's on random input.

A safetensors export carries the checkpoint's classes, normalisation and preprocessing
(`weights.portable`), so `predict`, `eval`, `features` and `alexnet.load` open it as they open
the checkpoint."""

from __future__ import annotations

import inspect
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from alexnet.atomic import save_with
from alexnet.errors import AlexNetError, ConfigError
from alexnet.weights.checkpoint import open_checkpoint
from alexnet.weights.portable import export_metadata, write_safetensors
from alexnet.weights.torchvision_weights import TORCHVISION

# onnx and onnxruntime are optional (the `export` extra): they are imported where a format
# needs them, and `_require` says how to install a missing one.

FORMATS = {"safetensors": ".safetensors", "onnx": ".onnx", "torchscript": ".pt"}
ATOL = {"safetensors": 0.0, "onnx": 1e-4, "torchscript": 1e-5}  # max |Δlogit| accepted


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as err:
        raise AlexNetError(f"export needs the `{module}` package: pip install {module} (all of "
                           "the export extra: pip install onnx onnxruntime, or "
                           "pip install -e '.[export]' in the project's clone)") from err


def example_input(model: nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Random input (B, C, s, s) at the model's image size (224 unless it says otherwise)."""
    size = int(model.config.get("image_size", 224))
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.config["in_channels"], size, size, generator=g)


def export_safetensors(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """The model's weights as safetensors, with `metadata` (`weights.portable.export_metadata`:
    what `load_checkpoint` needs to open the file as the checkpoint it came from)."""
    write_safetensors(path, model.state_dict(), metadata)


def load_safetensors(path: Path) -> nn.Module:
    """Rebuild the model of a safetensors file written by `export_safetensors`."""
    return open_checkpoint(path, device="cpu").model


def export_onnx(model: nn.Module, path: Path, x: torch.Tensor, opset: int = 17) -> None:
    kwargs: dict[str, Any] = {"input_names": ["images"], "output_names": ["logits"],
                              "dynamic_axes": {"images": {0: "batch"}, "logits": {0: "batch"}},
                              "opset_version": opset}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript-based exporter (dynamo needs onnxscript)
    def write(f: Any) -> None:
        try:
            torch.onnx.export(model, (x,), f, **kwargs)
        except (RuntimeError, ValueError, TypeError) as err:  # e.g. SymbolicValueError
            raise AlexNetError(f"this model cannot be exported to ONNX (opset {opset}): "
                               f"{str(err).splitlines()[0][:300]}; try --format torchscript "
                               "or safetensors") from None

    with warnings.catch_warnings():  # serialised in memory: a full disk is one WriteError
        warnings.simplefilter("ignore")
        save_with(path, write)


def run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    ort = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


def export_torchscript(model: nn.Module, path: Path, x: torch.Tensor) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in recent releases
        traced = torch.jit.trace(model, x)
        save_with(path, lambda f: torch.jit.save(traced, f))


def export_checkpoint(checkpoint: str | Path, fmt: str, out: str | Path | None = None, *,
                      check: bool = True) -> dict[str, Any]:
    """Write the checkpoint's model in `fmt` and check the written file reproduces the PyTorch
    logits (safetensors exactly; ONNX via onnxruntime on CPU and TorchScript within `ATOL`).

    Returns {"path", "format", "max_abs_diff", "bytes"}.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        _require(fmt)
    opened = open_checkpoint(checkpoint, device="cpu")  # a run folder: its best.pt
    src, state, model = opened.path, opened.state, opened.model.float()
    # `torchvision`: the file lives in the torch hub cache; write to the current folder
    beside = Path(src.name) if str(checkpoint) == TORCHVISION else src
    path = Path(out) if out else beside.with_name(
        src.stem + ("-model" if fmt == "torchscript" else "") + FORMATS[fmt])
    if path.resolve() == src.resolve():
        raise ConfigError(f"--out {path} is the checkpoint itself; choose another file name")
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; give a file name (e.g. {path / src.stem}"
                          f"{FORMATS[fmt]})")
    x = example_input(model)
    if fmt == "safetensors":
        # the rebuilt model's config: load_model fills in what older checkpoints left out
        described = {**state, "model": {"config": dict(model.config)}}
        export_safetensors(model, path, export_metadata(described))
    elif fmt == "onnx":
        export_onnx(model, path, x)
    else:
        export_torchscript(model, path, x)
    result: dict[str, Any] = {"path": str(path), "format": fmt, "bytes": path.stat().st_size,
                              "max_abs_diff": None}
    if check:
        x2 = example_input(model, batch=3, seed=1)  # another batch size: dynamic batch works
        with torch.no_grad():
            want = model(x2)
            if fmt == "safetensors":
                got = load_safetensors(path)(x2)
            elif fmt == "onnx":
                got = run_onnx(path, x2)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # torch.jit is deprecated
                    got = torch.jit.load(str(path))(x2)
        tol = ATOL[fmt] * max(1.0, want.abs().max().item())
        same_shape = tuple(got.shape) == tuple(want.shape)
        diff = (got.float() - want.float()).abs().max().item() if same_shape else math.inf
        if not diff <= tol:  # also catches NaN
            path.unlink(missing_ok=True)
            raise AlexNetError(f"the exported {fmt} model differs from the PyTorch model "
                               f"(max |difference| {diff:.3g}, tolerance {tol:.3g}, output shape "
                               f"{tuple(got.shape)} vs {tuple(want.shape)}); the file was "
                               "removed. Please report this with the checkpoint's config")
        result["max_abs_diff"] = diff
    return result
