"""Learning-rate schedules, applied once per epoch.

- `PlateauSchedule` (§5): divide ε by 10 when the validation error stops improving; after three
  reductions the next plateau ends the run ("reduced three times prior to termination").
- `EpochEventSchedule`: fixed events at given epochs, e.g. the released code's logged run
  (layer-params-145.cfg comments): epoch 25 ε 0.01 -> 0.001, 51 -> 0.0001, 67 conv1 -> 0.00001
  and colour noise off, 72 conv1 frozen, 79 -> 0.00001.

Epochs count from 0; an event at epoch E takes effect once E epochs are done, so
`epoch: 25` changes the rate of the 26th epoch (0-based index 25).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from alexnet.errors import ConfigError
from alexnet.schema import Rule, number, one_of, option, whole


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the base rate of every group (per-tensor `lr_mult` keeps applying on top)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    """The base rate (of the first group that is not frozen)."""
    groups = [g for g in optimizer.param_groups if not g.get("frozen")] or optimizer.param_groups
    return float(groups[-1]["lr"])


@dataclass
class PlateauSchedule:
    """Divide the rate by 1/`factor` after `patience` epochs without an improvement of the
    validation top-1 error by more than `threshold`; at most `max_reductions` times.

    The paper does not give a patience; 4 epochs put the three drops near the released log's
    epochs 25, 51 and 79 in a 90-epoch run (our choice, stated in the recipe).
    """

    factor: float = 0.1
    patience: int = 4
    max_reductions: int = 3
    threshold: float = 0.0
    best: float = float("inf")
    bad_epochs: int = 0
    reductions: int = 0
    stop_reason: str = ""  # "plateau" (§5's end) or "chance" (never learned: nothing to reduce)

    def start_epoch(self, epoch: int, optimizer: torch.optim.Optimizer, train_data: Any) -> None:
        """Nothing to do: the rate lives in the optimizer's state."""

    def end_epoch(self, epoch: int, val_error: float, optimizer: torch.optim.Optimizer,
                  at_chance: bool = False) -> bool:
        """Record this epoch's validation error; returns True when the run should end.

        `at_chance`: the run has never left chance (`RunDoctor`). A plateau then ends the run
        instead of spending a reduction: dividing ε by 10 does not rescue a network whose every
        prediction is the same class, and the remaining epochs would be spent at chance.
        """
        if val_error < self.best - self.threshold:
            self.best, self.bad_epochs = val_error, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs < self.patience:
            return False
        self.bad_epochs = 0
        if at_chance or self.reductions >= self.max_reductions:
            # §5: a plateau after the third reduction ends training
            self.stop_reason = "chance" if at_chance else "plateau"
            return True
        set_lr(optimizer, current_lr(optimizer) * self.factor)
        self.reductions += 1
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs,
                "reductions": self.reductions, "stop_reason": self.stop_reason}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("best", "bad_epochs", "reductions", "stop_reason"):
            if key in state:  # checkpoints of older versions also hold "stopped"
                setattr(self, key, state[key])


@dataclass
class EpochEventSchedule:
    """Events `{epoch, lr?, lighting?, layers?: {NAME: {lr?, frozen?}}}` applied at the start of
    each epoch. The state at epoch E is a pure function of the events with `epoch <= E`, so a
    resumed run needs nothing but its epoch."""

    base_lr: float
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        valid = {"epoch", "lr", "lighting", "layers"}
        for event in self.events:
            unknown = set(event) - valid
            if "epoch" not in event or unknown:
                raise ConfigError(f"schedule event {event} needs 'epoch' and may only have "
                                  f"keys {sorted(valid)}")
        self.events = sorted(self.events, key=lambda e: e["epoch"])

    def state_at(self, epoch: int) -> tuple[float, bool, dict[str, dict[str, Any]]]:
        """(base rate, lighting on, per-layer settings) in force during `epoch`."""
        lr, lighting, layers = self.base_lr, True, {}
        for event in self.events:
            if event["epoch"] > epoch:
                break
            lr = event.get("lr", lr)
            lighting = event.get("lighting", lighting)
            for name, setting in (event.get("layers") or {}).items():
                layers.setdefault(name, {}).update(setting)
        return lr, lighting, layers

    def start_epoch(self, epoch: int, optimizer: torch.optim.Optimizer, train_data: Any) -> None:
        lr, lighting, layers = self.state_at(epoch)
        for group in optimizer.param_groups:
            parts = str(group.get("name", "")).split(".")
            setting = next((s for layer, s in layers.items() if layer in parts), {})
            group["lr"] = setting.get("lr", lr)
            group["frozen"] = bool(setting.get("frozen", False))
        if hasattr(train_data, "lighting"):
            train_data.lighting = lighting  # epoch 67: colour noise off

    def end_epoch(self, epoch: int, val_error: float, optimizer: torch.optim.Optimizer,
                  at_chance: bool = False) -> bool:
        return False

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Stateless: `start_epoch` recomputes everything from the epoch."""


Schedule = PlateauSchedule | EpochEventSchedule


@dataclass
class ScheduleConfig:
    """`schedule:` when the learning rate changes (§5, or the released code's log)."""

    name: str = option("plateau", one_of("plateau", "events"),
                       "§5: ÷10 when the validation error stops improving; events: the "
                       "released code's log (layer-params-145.cfg)")
    factor: float = option(0.1, number("a number in (0, 1]", lambda v: 0 < v <= 1), "§5: ÷10")
    patience: int = option(4, whole(0), "not in the paper: our choice")
    max_reductions: int = option(3, whole(0), "§5: reduced three times prior to termination")
    threshold: float = option(0.0, number("a number >= 0", lambda v: v >= 0),
                              "any improvement counts")
    events: list[dict[str, Any]] = option([], Rule(
        "a list of {epoch, lr?, lighting?, layers?}",
        lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v)),
        "for name=events (checked by the schedule)")


def build_schedule(cfg: ScheduleConfig, base_lr: float) -> Schedule:
    """From the run config's `schedule` section (`name: plateau | events`)."""
    if cfg.name == "plateau":
        return PlateauSchedule(factor=cfg.factor, patience=cfg.patience,
                               max_reductions=cfg.max_reductions, threshold=cfg.threshold)
    if cfg.name == "events":
        return EpochEventSchedule(base_lr=base_lr, events=list(cfg.events or []))
    raise ConfigError(f"unknown schedule.name {cfg.name!r}; valid: plateau, events")
