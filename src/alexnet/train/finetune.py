"""Fine-tuning: start a run from trained weights (`init_from`), replace what the new data does
not fit, keep chosen layers fixed (`finetune.freeze`) and slow the others (`finetune.lr_mult`).

Layers are named as in the paper (Fig. 2) whatever the model calls its modules: the paper
family's own names (conv1..conv5, fc6..fc8; without conv3 under `remove_conv` there is no
conv3), otherwise by position: the k-th convolution of `features` is conv{k}, the k-th linear
layer of `classifier` is fc{k+5}, so torchvision's `features.0` is conv1 and `classifier.6` is
fc8.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from alexnet.errors import CheckpointError
from alexnet.train.run_config import FREEZE, SET_BY_THE_DATA


def paper_layers(model: nn.Module) -> dict[str, nn.Module]:
    """{"conv1": …, "conv5": …, "fc6": …, "fc8": …}: the weight layers in the paper's names:
    the modules' own names where they are the paper's (the paper family, whose layers keep
    their names when `remove_conv` leaves one out: without conv3 the layers are conv1, conv2,
    conv4, conv5), by position otherwise (torchvision's features.0, …)."""
    convs = [(n.split(".", 1)[0], m) for n, m in model.features.named_modules()
             if isinstance(m, nn.Conv2d)]
    linears = [(n.split(".", 1)[0], m) for n, m in model.classifier.named_modules()
               if isinstance(m, nn.Linear)]
    named = all(re.fullmatch(r"conv\d", n) for n, _ in convs) and all(
        re.fullmatch(r"fc\d", n) for n, _ in linears)
    if named:
        return dict(convs) | dict(linears)
    return ({f"conv{i + 1}": m for i, (_, m) in enumerate(convs)}
            | {f"fc{i + 6}": m for i, (_, m) in enumerate(linears)})


def _param_names(model: nn.Module) -> dict[str, list[str]]:
    """Paper layer name -> the state_dict keys of its weight and bias."""
    where = {id(m): name for name, m in model.named_modules()}
    return {layer: [f"{where[id(m)]}.{p}" for p, _ in m.named_parameters(recurse=False)]
            for layer, m in paper_layers(model).items()}


def init_model_config(state: dict[str, Any]) -> dict[str, Any]:
    """The model section of a run that starts from `state`: its model's config, minus what the
    new data sets (classes, channels)."""
    try:
        config = dict(state["model"]["config"])
    except (KeyError, TypeError) as err:
        raise CheckpointError("init_from: the checkpoint has no model section") from err
    return {k: v for k, v in config.items() if k not in SET_BY_THE_DATA}


def adapt_conv1(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """conv1's (96, C, 11, 11) weights for `channels` inputs. RGB -> grey: the sum over C, which
    answers a grey image g as the RGB net answers (g, g, g); grey -> RGB: the grey kernel / 3
    on each channel, which answers (r, g, b) as the grey net answers their mean."""
    if channels == 1:
        return weight.sum(1, keepdim=True)
    if weight.shape[1] == 1:
        return weight.repeat(1, channels, 1, 1) / channels
    raise CheckpointError(f"conv1 has {weight.shape[1]} input channels and the data "
                          f"{channels}: only 1 <-> 3 channels can be adapted")


def transfer(model: nn.Module, state: dict[str, Any]) -> dict[str, list[str]]:
    """Load `state`'s weights into `model` (built for the new data): every layer whose shape
    fits is copied; the last layer (fc8) is left as initialised when the class count differs,
    conv1 adapted when the channel count does (`adapt_conv1`). Anything else that does not fit
    is one `CheckpointError` naming the layers.

    Returns {"copied", "replaced", "adapted"}: paper layer names.
    """
    source = state["model"]["state_dict"]
    target = model.state_dict()
    names = _param_names(model)
    head = list(names)[-1]
    report: dict[str, list[str]] = {"copied": [], "replaced": [], "adapted": []}
    problems, loaded = [], {}
    for layer, keys in names.items():
        missing = [k for k in keys if k not in source]
        if missing:
            problems.append(f"{layer}: {', '.join(missing)} not in the checkpoint")
            continue
        fits = all(source[k].shape == target[k].shape for k in keys)
        if fits:
            loaded.update({k: source[k] for k in keys})
            report["copied"].append(layer)
        elif layer == head and source[keys[0]].shape[1:] == target[keys[0]].shape[1:]:
            report["replaced"].append(layer)  # a new head for the new classes, freshly initialised
        elif layer == "conv1" and source[keys[0]].shape[0] == target[keys[0]].shape[0]:
            weight, bias = keys
            loaded[weight] = adapt_conv1(source[weight], target[weight].shape[1])
            loaded[bias] = source[bias]
            report["adapted"].append(layer)
        else:
            shapes = ", ".join(f"{k} {tuple(source[k].shape)} vs {tuple(target[k].shape)}"
                               for k in keys)
            problems.append(f"{layer}: {shapes} (checkpoint vs model)")
    if problems:
        raise CheckpointError("init_from: the checkpoint's weights do not fit the model:\n"
                              + "\n".join(problems))
    model.load_state_dict(loaded, strict=False)
    return report


def freeze(model: nn.Module, how: str) -> list[str]:
    """Keep the layers `FREEZE[how]` names as loaded (no gradients: their backward is not
    computed either). Returns the frozen layer names."""
    layers = paper_layers(model)
    frozen = [name for name in FREEZE[how] if name in layers]
    for name in frozen:
        layers[name].requires_grad_(False)
    return frozen


def scale_rates(optimizer: torch.optim.Optimizer, model: nn.Module, layers: list[str],
                lr_mult: float) -> None:
    """Multiply the rate of `layers`' tensors by `lr_mult` (PaperSGD's per-group `lr_mult`);
    groups of frozen tensors are marked `frozen`."""
    keys = {k for layer, ks in _param_names(model).items() if layer in layers for k in ks}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    for group in optimizer.param_groups:
        name = group.get("name")
        if name in frozen:
            group["frozen"] = True
        elif name in keys and "lr_mult" in group:
            group["lr_mult"] = group["lr_mult"] * lr_mult


def started_from(spec: str, state: dict[str, Any], report: dict[str, list[str]],
                 frozen: list[str], normalization: str) -> dict[str, Any]:
    """The config's `started_from` record: what the run's weights came from."""
    pretrained = state.get("pretrained") or {}
    metrics = (state.get("metrics") or {}).get("val") or {}
    return {"init_from": spec,
            "weights": pretrained.get("from") or "an alexnet checkpoint",
            "file": str(pretrained.get("file") or spec),
            "model": state["model"]["config"].get("name"),
            "classes": state["model"]["config"].get("num_classes"),
            "val_top1_err": metrics.get("top1_err"),
            **report, "frozen": frozen, "normalization": normalization}
