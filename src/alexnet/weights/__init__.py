"""Weights in and out, in one place: checkpoints (atomic saves, safe loads, `open_checkpoint`
for every command), torchvision's ImageNet weights through its public API, the portable layouts
(a safetensors export, a Hugging Face folder), Caffe's bvlc_alexnet, and the exports (ONNX,
TorchScript, safetensors) checked against PyTorch."""

from alexnet.weights.checkpoint import (
    load_checkpoint,
    load_model,
    open_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
)

__all__ = ["load_checkpoint", "load_model", "open_checkpoint", "resolve_checkpoint_path",
           "save_checkpoint"]
