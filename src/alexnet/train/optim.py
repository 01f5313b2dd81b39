"""The paper's update rule (§5) as a `torch.optim.Optimizer`, and the optimizer factory.

§5:  v <- 0.9·v - 0.0005·ε·w - ε·∂L/∂w;   w <- w + v.

ε sits inside the velocity, so a change of ε only affects new gradients. `torch.optim.SGD` keeps
v = m·v + g + wd·w and steps w <- w - ε·v, so when ε drops by 10 the velocity already built up
is scaled down with it: the two rules agree only while ε is constant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from alexnet.errors import ConfigError
from alexnet.schema import number, one_of, option


class PaperSGD(torch.optim.Optimizer):
    """§5's momentum SGD. Parameter groups may carry `lr_mult` and `wd_mult` (the released
    code's per-layer `epsW`/`epsB` and `wc`: layer-params-145.cfg), `frozen` (skip the update)
    and `lr_fixed` (the group keeps its starting rate whatever the schedule does: the released
    code lowered `epsW` during the run and left `epsB` at 0.02, layer-params-145.cfg).

    The effective rate of a group is `lr·lr_mult` (`initial_lr·lr_mult` when `lr_fixed`), its
    decay `weight_decay·wd_mult`. Tensors with
    the same (rate, decay, momentum, device, dtype) are updated together with `torch._foreach_*`.
    """

    def __init__(self, params: Iterable[Any], lr: float = 0.01, momentum: float = 0.9,
                 weight_decay: float = 5e-4) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ConfigError(f"PaperSGD needs lr, momentum and weight_decay >= 0, got "
                              f"lr={lr}, momentum={momentum}, weight_decay={weight_decay}")
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                    "lr_mult": 1.0, "wd_mult": 1.0, "frozen": False, "lr_fixed": False}
        super().__init__(params, defaults)
        for group in self.param_groups:
            group.setdefault("initial_lr", group["lr"])  # the rate an `lr_fixed` group keeps

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        buckets: dict[tuple, tuple[list, list, list]] = defaultdict(lambda: ([], [], []))
        for group in self.param_groups:
            if group["frozen"]:
                continue
            base = group["initial_lr"] if group["lr_fixed"] else group["lr"]
            lr = base * group["lr_mult"]  # ε of this tensor
            decay = group["weight_decay"] * group["wd_mult"] * lr  # 0.0005·ε
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                ws, gs, vs = buckets[(lr, decay, group["momentum"], p.device, p.dtype)]
                ws.append(p)
                gs.append(p.grad)
                vs.append(state["momentum_buffer"])
        for (lr, decay, momentum, _, _), (ws, gs, vs) in buckets.items():
            torch._foreach_mul_(vs, momentum)  # v <- m·v
            if decay:
                torch._foreach_add_(vs, ws, alpha=-decay)  # v -= wd·ε·w
            torch._foreach_add_(vs, gs, alpha=-lr)  # v -= ε·g
            torch._foreach_add_(ws, vs)  # w <- w + v
        return loss


@dataclass
class OptimConfig:
    """`optim:` §5's update rule and its constants."""

    name: str = option("paper", one_of("paper", "sgd"),
                       "§5's update rule (PaperSGD); sgd = torch.optim.SGD")
    lr: float = option(0.01, number("a number > 0", lambda v: v > 0),
                       "§5: ε starts at 0.01, for the global batch")
    momentum: float = option(0.9, number("a number in [0, 1)", lambda v: 0 <= v < 1), "§5")
    weight_decay: float = option(0.0005, number("a number >= 0", lambda v: v >= 0), "§5")


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """`cfg` is the run config's `optim` section: `name` is `paper` (§5's rule, with the
    model's `optim_groups()` multipliers) or `sgd` (torch.optim.SGD, as torchvision's recipe)."""
    groups = model.optim_groups() if hasattr(model, "optim_groups") else [
        {"name": n, "params": [p], "lr_mult": 1.0, "wd_mult": 1.0}
        for n, p in model.named_parameters()]
    name = cfg.name
    if name == "paper":
        return PaperSGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if name == "sgd":
        # torchvision's reference: one rate and decay for every tensor; multipliers ignored.
        plain = [{"name": g["name"], "params": g["params"]} for g in groups]
        return torch.optim.SGD(plain, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optim.name {name!r}; valid: paper, sgd")
