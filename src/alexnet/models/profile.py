"""Per-layer shapes, parameter counts and FLOPs, as `alexnet summary` and `models` show."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from alexnet.models.base import AlexNetBase


@dataclass
class LayerRow:
    name: str  # e.g. "features.conv1"
    kind: str  # module class
    output_shape: list[int]  # per image, e.g. [96, 55, 55]
    params: int
    macs: int  # multiply-accumulates per image


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        return out[0].numel() * k
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return sum(_macs(m, out) for m in module.children() if isinstance(m, nn.Conv2d | nn.Linear))


def layer_table(model: AlexNetBase, image_size: int | None = None) -> list[LayerRow]:
    """One row per child of `features`, the pooling and `classifier`, from a forward pass of
    one zero image in eval mode."""
    size = image_size or model.config.get("image_size", 224)
    rows: list[LayerRow] = []
    hooks = []
    parts = [("features", model.features), ("avgpool", model.avgpool),
             ("classifier", model.classifier)]
    for prefix, part in parts:
        children = list(part.named_children()) if len(list(part.children())) else [("", part)]
        for name, child in children:
            if prefix == "avgpool" and isinstance(child, nn.Identity):
                continue
            full = f"{prefix}.{name}" if name else prefix

            def hook(mod: nn.Module, _inp: object, out: torch.Tensor, full: str = full) -> None:
                kind = type(mod).__name__
                if isinstance(mod, nn.Sequential):  # conv1 = zero pad + conv
                    kind = "+".join(type(m).__name__ for m in mod)
                rows.append(LayerRow(full, kind, list(out.shape[1:]),
                                     sum(p.numel() for p in mod.parameters()), _macs(mod, out)))

            hooks.append(child.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, model.in_channels, size, size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def model_stats(model: AlexNetBase, image_size: int = 224) -> dict[str, float | int]:
    """Parameters and forward GFLOPs (2 × multiply-accumulates of conv and fc) per image."""
    macs = sum(r.macs for r in layer_table(model, image_size))
    return {"params": sum(p.numel() for p in model.parameters()), "gmacs": macs / 1e9,
            "gflops": 2 * macs / 1e9}


def rows_as_dicts(rows: list[LayerRow]) -> list[dict]:
    return [asdict(r) for r in rows]
