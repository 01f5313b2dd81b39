"""The run configuration: a recipe (YAML preset) + KEY=VALUE overrides -> one resolved dict.

Every key a run reads is listed in `DEFAULTS` with the reason for its value; a key that is not
there is a `ConfigError` naming the valid ones. `model` and `data` are open mappings: their keys
are checked by `create_model` and `DataConfig.from_dict`.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable
from typing import Any

import torch
import yaml

from alexnet.devices import check_device
from alexnet.errors import AlexNetError, ConfigError

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
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, allow_unicode=True)


# ---------------------------------------------------------------- the schema: checked first

Check = Callable[[Any], bool]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) and math.isfinite(v)


def _whole(lo: int, hi: int | None = None) -> tuple[str, Check]:
    text = f"a whole number >= {lo}" + (f" and <= {hi:,}" if hi is not None else "")
    return text, lambda v: _is_int(v) and v >= lo and (hi is None or v <= hi)


def _number(text: str, ok: Callable[[float], bool]) -> tuple[str, Check]:
    return text, lambda v: _is_number(v) and ok(v)


def _one_of(*choices: Any) -> tuple[str, Check]:
    return "one of " + ", ".join(map(str, choices)), lambda v: isinstance(v, str | bool) and \
        any(v is c or (isinstance(v, str) and v == c) for c in choices)


BOOL: tuple[str, Check] = ("true or false", lambda v: isinstance(v, bool))
MAX_PARAMETERS = 1_000_000_000  # 4 GB of fp32 weights; the paper's net has 61 M

# Every scalar key of DEFAULTS: (what is allowed, check). `model.*` and `data.*` are checked by
# `check_model_options` and `DataConfig.from_dict`; `schedule.events` by the schedule.
SCHEMA: dict[str, tuple[str, Check]] = {
    "recipe": ("a name", lambda v: isinstance(v, str) and bool(v)),
    "description": ("text", lambda v: isinstance(v, str)),
    "epochs": _whole(1, 100_000),
    "batch_size": _whole(1, 1 << 20),
    "optim.name": _one_of("paper", "sgd"),
    "optim.lr": _number("a number > 0", lambda v: v > 0),
    "optim.momentum": _number("a number in [0, 1)", lambda v: 0 <= v < 1),
    "optim.weight_decay": _number("a number >= 0", lambda v: v >= 0),
    "schedule.name": _one_of("plateau", "events"),
    "schedule.factor": _number("a number in (0, 1]", lambda v: 0 < v <= 1),
    "schedule.patience": _whole(0),
    "schedule.max_reductions": _whole(0),
    "schedule.threshold": _number("a number >= 0", lambda v: v >= 0),
    "schedule.events": ("a list of {epoch, lr?, lighting?, layers?}",
                        lambda v: isinstance(v, list) and all(isinstance(e, dict) for e in v)),
    "quick": _one_of(True, False, "auto"),
    "quick_overrides": ("a mapping of KEY: VALUE", lambda v: isinstance(v, dict)),
    "train_batches": ("null or a whole number >= 1", lambda v: v is None or (_is_int(v)
                                                                           and v >= 1)),
    "seed": _whole(0, 2**63 - 1),
    "deterministic": BOOL,
    "device": ("auto, cpu, cuda or cuda:N", lambda v: isinstance(v, str) and v != ""),
    "compile": BOOL,
    "amp": BOOL,
    "channels_last": BOOL,
    "log_every": _whole(1),
    "towers": BOOL,
    "tower_devices": ("null or a list of two devices", lambda v: v is None or (
        isinstance(v, list) and len(v) == 2 and all(isinstance(d, str) for d in v))),
}


def check_model_options(name: Any, options: dict[str, Any], *, num_classes: int = 1000,
                        in_channels: int = 3, prefix: str = "model.") -> list[str]:
    """Problems with a model name and its options, one line each: types against the builder's
    defaults (lrn=maybe is not a bool), dropout in [0, 1), then a build on the meta device (no
    memory) that catches the rest, and the parameter count against `MAX_PARAMETERS`."""
    from alexnet.models import create_model, list_models, model_info

    if not isinstance(name, str) or name not in list_models():
        label = "model.name=" if prefix == "model." else "model "
        return [f"{label}{name!r}: unknown model; valid models: {', '.join(list_models())}"]
    errors = []
    for fixed in ("num_classes", "in_channels"):
        if fixed in options and prefix == "model.":
            errors.append(f"{prefix}{fixed}={options[fixed]!r}: set by the data, not the "
                          "config; remove it")
    params = inspect.signature(model_info(name).builder).parameters
    for key, value in options.items():
        if key in ("num_classes", "in_channels"):
            continue
        if key not in params or params[key].kind is not inspect.Parameter.KEYWORD_ONLY:
            valid = [k for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
            errors.append(f"{prefix}{key}={value!r}: model {name!r} has no option {key!r}; "
                          f"its options: {', '.join(valid)}")
            continue
        default = params[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            errors.append(f"{prefix}{key}={value!r}: expected true or false")
        elif _is_int(default) and not _is_int(value):
            errors.append(f"{prefix}{key}={value!r}: expected a whole number")
        elif isinstance(default, float) and not _is_number(value):
            errors.append(f"{prefix}{key}={value!r}: expected a number")
        elif isinstance(default, str) and not isinstance(value, str):
            errors.append(f"{prefix}{key}={value!r}: expected text")
        elif key == "dropout" and not 0 <= value < 1:
            errors.append(f"{prefix}dropout={value!r}: expected a probability in [0, 1)")
        elif key == "image_size" and not 1 <= value <= 4096:
            errors.append(f"{prefix}image_size={value!r}: expected a whole number of pixels "
                          "up to 4096 (224 in the paper)")
        elif key == "init" and value not in (None, "paper", "original", "xavier"):
            errors.append(f"{prefix}init={value!r}: expected paper, original or xavier")
    if errors:
        return errors
    # The init does not change shapes; xavier's uniform_ builds on the meta device at once,
    # where normal_ would first import torch._dynamo (seconds).
    shapes_only = {**options, "init": "xavier"} if "init" in params else options
    try:
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes, in_channels=in_channels,
                                 **shapes_only)
    except AlexNetError as err:
        return [f"model {name!r}: {err}"]
    except (TypeError, ValueError, RuntimeError) as err:
        return [f"model {name!r} with options {options}: {err}"]
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        return [f"model {name!r} with {options or 'its default options'} and "
                f"{num_classes:,} classes would have {count:,} parameters ({count * 4 / 2**30:.0f}"
                f" GiB in fp32); at most {MAX_PARAMETERS:,} are allowed (the paper's: 61 M)"]
    return []


def _walk_schema_keys(cfg: dict[str, Any]) -> list[str]:
    errors = []
    for key, (allowed, ok) in SCHEMA.items():
        value = cfg_get(cfg, key, _MISSING)
        if value is _MISSING:
            continue
        if not ok(value):
            errors.append(f"{key}={value!r}: expected {allowed}")
    return errors


_MISSING = object()


def validate_config(cfg: dict[str, Any]) -> None:
    """Check every value of a resolved config before anything is built; raise one
    `ConfigError` with one line per problem (the key, the value, what is allowed)."""
    errors = _walk_schema_keys(cfg)
    if "device" not in [e.split("=")[0] for e in errors]:
        problem = check_device(cfg.get("device"))
        errors += [problem] if problem else []
    if cfg.get("towers") and not errors:
        for i, dev in enumerate(cfg.get("tower_devices") or []):
            problem = check_device(dev, f"tower_devices[{i}]")
            errors += [problem] if problem else []
    if not any(e.startswith("schedule.") for e in errors):
        try:
            from alexnet.train.schedule import build_schedule

            build_schedule(cfg["schedule"], 0.01)
        except AlexNetError as err:
            errors.append(f"schedule: {err}")
        except (TypeError, ValueError, KeyError) as err:
            errors.append(f"schedule: {cfg['schedule']!r} is malformed ({err})")
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    try:
        from alexnet.data.config import DataConfig

        DataConfig.from_dict(dict(data))
    except AlexNetError as err:
        errors += str(err).splitlines()
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    channels = data.get("channels") or (1 if data.get("source") == "fashion-mnist" else 3)
    options = {k: v for k, v in model.items() if k != "name"}
    errors += check_model_options(model.get("name"), options,
                                  in_channels=channels if channels in (1, 3) else 3)
    if errors:
        raise ConfigError("\n".join(errors))
