"""The run configuration: a recipe (YAML preset) + KEY=VALUE overrides -> one resolved dict.

Every key a run reads is listed in `DEFAULTS` with the reason for its value; a key that is not
there is a `ConfigError` naming the valid ones. `model` and `data` are open mappings: their keys
are checked by `create_model` and `DataConfig.from_dict`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import yaml

from alexnet.errors import ConfigError

OPEN_SECTIONS = ("model", "data")  # keys checked by the models and data parts

DEFAULTS: dict[str, Any] = {
    "recipe": "fashion-mnist",
    "description": "",
    "model": {"name": "paper"},  # the rest are create_model options (image_size, lrn, ...)
    "data": {"source": "fashion-mnist"},  # DataConfig.from_dict(...)
    "epochs": 90,  # §5: "roughly 90 cycles through the training set"
    "batch_size": 128,  # §5, global: split evenly over the processes of a distributed run
    "optim": {
        "name": "paper",  # §5's rule (PaperSGD); `sgd` = torch.optim.SGD
        "lr": 0.01,  # §5: ε starts at 0.01, for the global batch
        "momentum": 0.9,  # §5
        "weight_decay": 0.0005,  # §5
    },
    "schedule": {
        "name": "plateau",  # §5: ÷10 when the validation error stops improving
        "factor": 0.1,
        "patience": 4,  # not in the paper: our choice
        "max_reductions": 3,  # §5: "reduced three times prior to termination"
        "threshold": 0.0,
        "events": [],  # for name=events: [{epoch, lr?, lighting?, layers?}]
    },
    "quick": "auto",  # auto = on without CUDA: a short run that finishes on a laptop CPU
    "quick_overrides": {},  # dotted KEY: VALUE applied when quick is on (set by each recipe)
    "train_batches": None,  # cap on batches per epoch (a training subset); None = all
    "seed": 0,
    "deterministic": False,  # torch.use_deterministic_algorithms: bitwise resume on CPU
    "device": "auto",  # auto = cuda when available, else cpu
    "compile": True,  # torch.compile on CUDA (never on CPU: compile time beats the gain there)
    "amp": True,  # bf16 autocast on CUDA
    "channels_last": True,  # on CUDA
    "log_every": 50,  # steps between host syncs (progress bar, finiteness check)
    "towers": False,  # §3.2: two-tower model parallelism, one tower per device (paper models)
    "tower_devices": None,  # e.g. [cuda:0, cuda:1]; None = the first two CUDA devices
    "distributed": {},  # written at start: world_size, per-rank batch, lr rule
}


def parse_value(text: str) -> Any:
    """A KEY=VALUE override's value, parsed as YAML (`0.1`, `true`, `[1, 2]`, `null`)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"cannot parse override value {text!r} as YAML: {err}") from None
    if isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads `2e-3` (no dot) as a string
        except ValueError:
            pass
    return value


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """["optim.lr=0.02", "epochs=3"] -> {"optim.lr": 0.02, "epochs": 3}."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. optim.lr=0.02)")
        out[key.strip()] = parse_value(value)
    return out


def _valid_keys(tree: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        keys.append(prefix + key)
        if isinstance(value, dict) and value and key not in OPEN_SECTIONS:
            keys += _valid_keys(value, f"{prefix}{key}.")
    return keys


def set_dotted(cfg: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in `cfg`; unknown keys (outside `model`/`data`) raise `ConfigError`."""
    parts = key.split(".")
    node: Any = cfg
    schema: Any = DEFAULTS
    for i, part in enumerate(parts):
        open_section = i > 0 and parts[0] in OPEN_SECTIONS
        if not open_section and (not isinstance(schema, dict) or part not in schema):
            raise ConfigError(f"unknown config key {key!r}; valid keys: "
                              f"{', '.join(_valid_keys(DEFAULTS))} (and any key under "
                              f"{' / '.join(OPEN_SECTIONS)})")
        schema = schema.get(part) if isinstance(schema, dict) else None
        if i == len(parts) - 1:
            node[part] = value
        else:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]


def merge(cfg: dict[str, Any], updates: dict[str, Any], prefix: str = "") -> None:
    """Deep-merge nested `updates` (a recipe) into `cfg`, checking every key."""
    for key, value in updates.items():
        dotted = prefix + key
        if isinstance(value, dict) and value and dotted != "quick_overrides":
            if not isinstance(cfg_get(cfg, dotted), dict):
                set_dotted(cfg, dotted, {})
            merge(cfg, value, dotted + ".")
        else:
            set_dotted(cfg, dotted, copy.deepcopy(value))


def cfg_get(cfg: dict[str, Any], key: str, default: Any = None) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def resolve_config(recipe: dict[str, Any], overrides: dict[str, Any] | None = None,
                   *, cuda: bool | None = None) -> dict[str, Any]:
    """DEFAULTS <- recipe <- (quick_overrides if quick) <- overrides; returns a new dict.

    `quick: auto` becomes true when CUDA is absent (`cuda` overrides the detection in tests).
    """
    overrides = overrides or {}

    def build(with_quick: bool) -> dict[str, Any]:
        cfg = copy.deepcopy(DEFAULTS)
        merge(cfg, recipe)
        if with_quick:
            for key, value in (cfg.get("quick_overrides") or {}).items():
                set_dotted(cfg, key, copy.deepcopy(value))
        for key, value in overrides.items():
            set_dotted(cfg, key, copy.deepcopy(value))
        return cfg

    cfg = build(False)
    quick = cfg["quick"]
    if quick == "auto":
        quick = not (torch.cuda.is_available() if cuda is None else cuda)
    if not isinstance(quick, bool):
        raise ConfigError(f"quick must be true, false or auto, got {cfg['quick']!r}")
    if quick:
        cfg = build(True)
    cfg["quick"] = quick
    return cfg


def dump_config(cfg: dict[str, Any]) -> str:
    """The resolved config as YAML (keys in DEFAULTS order)."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)
