"""§3.2's model parallelism: each of the two towers on its own device.

The paper put half of the kernels (or neurons) of each layer on each GPU; "the GPUs communicate
only in certain layers": conv3 and the fully-connected layers take the maps of both towers,
while conv2, conv4 and conv5 see only their own tower's maps (groups=2 in the one-device model).

`TwoTowerParallel` splits a `paper`/`original` model's weights by output channel: tower t holds
rows [t·C/2, (t+1)·C/2) of every conv and fc layer on `devices[t]` (an odd class count puts one
more fc8 row in tower 0). Its function and its
`state_dict` equal those of the one-device model, so checkpoints are interchangeable.

LRN: with the default `lrn_per_tower=true` each tower normalises its own 48/128 maps, as the
paper's GPUs did, and nothing is exchanged. With `lrn_per_tower=false` the one-device model's
5-map window spans the boundary, so each tower borrows the 2 neighbouring maps of the other after
conv1 and conv2 to stay equal to it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from alexnet.errors import ConfigError
from alexnet.models.local_response_norm import LocalResponseNorm


def _leaves(module: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    return [(f"{prefix}.{name}", m) for name, m in module.named_modules()
            if not list(m.children())]


class TwoTowerParallel(nn.Module):
    """A two-tower model run with tower t on `devices[t]` (default cuda:0 and cuda:1)."""

    def __init__(self, model: nn.Module, devices: list[str] | None = None) -> None:
        super().__init__()
        if getattr(model, "towers", 1) != 2:
            raise ConfigError(f"towers=true needs a two-tower model (paper, original), got "
                              f"{model.config.get('name')!r}")
        if devices is None:
            if torch.cuda.device_count() < 2:
                raise ConfigError("towers=true needs two devices: set tower_devices=[cuda:0,"
                                  "cuda:1] on a machine with two GPUs")
            devices = ["cuda:0", "cuda:1"]
        if len(devices) != 2:
            raise ConfigError(f"tower_devices must name two devices, got {devices}")
        self.devices = [torch.device(d) for d in devices]
        self.config, self.towers = dict(model.config), 2
        self._template_groups = {g["name"]: (g["lr_mult"], g["wd_mult"])
                                 for g in model.optim_groups()}
        self.layers = (_leaves(model.features, "features") + [("flatten", nn.Flatten())]
                       + _leaves(model.classifier, "classifier"))
        # parameters of tower t, keyed by the layer's name with "." -> "/"
        self.tower = nn.ModuleList([nn.ParameterDict(), nn.ParameterDict()])
        self.load_state_dict(model.state_dict())

    def _param(self, t: int, name: str) -> nn.Parameter:
        return self.tower[t][name.replace(".", "/")]

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True) -> Any:
        """Load a one-device model's state_dict, splitting each tensor by output rows."""
        for name, layer in self.layers:
            if not isinstance(layer, nn.Conv2d | nn.Linear):
                continue
            for kind in ("weight", "bias"):
                halves = torch.tensor_split(state[f"{name}.{kind}"].detach(), 2)  # by output
                for t in range(2):
                    part = halves[t].clone().to(self.devices[t])
                    key = f"{name}.{kind}".replace(".", "/")
                    if key in self.tower[t]:
                        with torch.no_grad():
                            self.tower[t][key].copy_(part)
                    else:
                        self.tower[t][key] = nn.Parameter(part)
        return None

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """The one-device model's state_dict (tensors on devices[0])."""
        out = {}
        for key in self.tower[0]:
            name = key.replace("/", ".")
            out[name] = torch.cat([self.tower[0][key].detach(),
                                   self.tower[1][key].detach().to(self.devices[0])])
        return out

    def optim_groups(self) -> list[dict[str, Any]]:
        """The one-device model's multipliers, one group per tower tensor."""
        groups = []
        for t in range(2):
            for key, p in self.tower[t].items():
                name = key.replace("/", ".")
                lr_mult, wd_mult = self._template_groups[name]
                groups.append({"name": f"{name}.tower{t}", "params": [p], "lr_mult": lr_mult,
                               "wd_mult": wd_mult})
        return groups

    def _exchange(self, xs: list[torch.Tensor], split: bool) -> list[torch.Tensor]:
        """What each tower sees of both: the full input before the split, else both halves."""
        if not split:
            return xs
        return [torch.cat([xs[0].to(self.devices[t]), xs[1].to(self.devices[t])], dim=1)
                for t in range(2)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = [x.to(d) for d in self.devices]  # both towers see the image (B, C, H, W)
        split = False  # True once each tower holds only its own half of the maps
        for name, layer in self.layers:
            if isinstance(layer, nn.Conv2d | nn.Linear):
                if not split or getattr(layer, "groups", 1) == 1:
                    xs = self._exchange(xs, split)  # conv1 (image), conv3, fc6-fc8: both towers
                w = [self._param(t, f"{name}.weight") for t in range(2)]
                b = [self._param(t, f"{name}.bias") for t in range(2)]
                if isinstance(layer, nn.Linear):
                    xs = [F.linear(xs[t], w[t], b[t]) for t in range(2)]
                else:  # groups=2 becomes one ordinary conv per tower on its own maps
                    xs = [F.conv2d(xs[t], w[t], b[t], stride=layer.stride,
                                   padding=layer.padding) for t in range(2)]
                split = True
            elif isinstance(layer, LocalResponseNorm) and split and layer.groups == 2:
                per_tower = LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.k,
                                              layer.alpha_over_n)  # each tower: its own maps
                xs = [per_tower(xt) for xt in xs]
            elif isinstance(layer, LocalResponseNorm) and split:
                xs = self._lrn_with_halo(layer, xs)
            else:  # ReLU, pooling, padding, dropout, same-map norm, flatten: per tower
                xs = [layer(xt) for xt in xs]
        return torch.cat([xs[0], xs[1].to(self.devices[0])], dim=1)  # (B, classes) on devices[0]

    def _lrn_with_halo(self, lrn: LocalResponseNorm, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        left, right = lrn.size // 2, (lrn.size - 1) // 2
        c = xs[0].shape[1]
        x0 = torch.cat([xs[0], xs[1][:, :right].to(self.devices[0])], dim=1)
        x1 = torch.cat([xs[0][:, c - left:].to(self.devices[1]), xs[1]], dim=1)
        return [lrn(x0)[:, :c], lrn(x1)[:, left:]]
