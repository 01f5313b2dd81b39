"""The run configuration: a recipe (YAML preset) + KEY=VALUE overrides -> one resolved dict.

`KEYS` declares every key once: its default, the rule its value must pass and why the default
is what it is. Defaults (`defaults()`), the checks (`validate_config`), the unknown-key message
(`set_dotted`) and the listing (`key_table`, `alexnet recipes --keys`) all come from it. The
`data.*` keys are the fields of `DataConfig`; the `model.*` keys other than `name` and
`image_size` are the options of the chosen model (`MODEL_OPTIONS`, its builder's signature).

`model.image_size` is the side the network sees, stated once; `data.crop` and `data.resize`
follow from it (`derive_sizes`), and a config where they disagree is refused.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
from typing import Any

import torch
import yaml

from alexnet.data.config import DATA_KEYS, IMAGE_SIZE, SMALL_DATASETS, DataConfig
from alexnet.devices import check_device
from alexnet.errors import AlexNetError, ConfigError
from alexnet.models import create_model, list_models, model_info
from alexnet.schema import (
    ANY,
    BOOL,
    MAPPING,
    TEXT,
    Key,
    Rule,
    is_number,
    is_whole,
    number,
    one_of,
    parse_overrides,
    parse_value,
    whole,
)
from alexnet.train.schedule import build_schedule

# finetune.freeze: the layers each value keeps fixed (names as in models/paper.py).
FREEZE = {"none": (), "conv1-3": ("conv1", "conv2", "conv3"),
          "features": ("conv1", "conv2", "conv3", "conv4", "conv5"),
          "fc7": ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")}

__all__ = ["KEYS", "MODEL_OPTIONS", "check_model_options", "defaults", "derive_sizes",
           "dump_config", "key_table", "parse_overrides", "parse_value", "resolve_config",
           "set_dotted", "validate_config"]

MAX_PARAMETERS = 1_000_000_000  # 4 GB of fp32 weights; the paper's net has 61 M
FROM_THE_MODEL = "the model's"  # the default of a model option: its builder's (models/)

IMAGE_SIDE = Key(IMAGE_SIZE, whole(1, 4096),
                 "§4.1: the network sees 224×224 patches; data.crop and data.resize follow")

# Every key of a run, in the order a resolved config is written.
KEYS: dict[str, Key] = {
    "recipe": Key("fashion-mnist", Rule("a name", lambda v: isinstance(v, str) and bool(v)),
                  "the default recipe (recipes/fashion-mnist.yaml)"),
    "description": Key("", TEXT, "the recipe's one-line summary"),
    "model.name": Key("paper", Rule("a model of `alexnet models`", lambda v: v in list_models()),
                      "§3.5, Fig. 2: the two-tower network"),
    "model.image_size": IMAGE_SIDE,
    **{f"data.{name}": key for name, key in DATA_KEYS.items()},
    "init_from": Key(None, Rule("null, a checkpoint or run folder, torchvision, or a "
                                "torchvision .pth file", lambda v: isinstance(v, str) and
                                bool(v)).or_null(),
                     "fine-tuning: start from these weights (the model follows them); "
                     "null = a new net (§5's init)"),
    "finetune.freeze": Key("none", one_of(*FREEZE),
                           "with init_from: layers kept as loaded; conv1-3 = conv1..conv3, "
                           "features = every conv layer, fc7 = all but the new head (a linear "
                           "probe on fc7's features)"),
    "finetune.lr_mult": Key(1.0, number("a number >= 0", lambda v: v >= 0),
                            "with init_from: rate multiplier of the loaded layers (the new head "
                            "keeps 1); Caffe's fine-tuning example gives them 1/10 of fc8's"),
    "epochs": Key(90, whole(1, 100_000), "§5: roughly 90 cycles through the training set"),
    "batch_size": Key(128, whole(1, 1 << 20),
                      "§5; global: split evenly over the processes of a distributed run"),
    "optim.name": Key("paper", one_of("paper", "sgd"),
                      "§5's update rule (PaperSGD); sgd = torch.optim.SGD"),
    "optim.lr": Key(0.01, number("a number > 0", lambda v: v > 0),
                    "§5: ε starts at 0.01, for the global batch"),
    "optim.momentum": Key(0.9, number("a number in [0, 1)", lambda v: 0 <= v < 1), "§5"),
    "optim.weight_decay": Key(0.0005, number("a number >= 0", lambda v: v >= 0), "§5"),
    "schedule.name": Key("plateau", one_of("plateau", "events"),
                         "§5: ÷10 when the validation error stops improving; events: the "
                         "released code's log (layer-params-145.cfg)"),
    "schedule.factor": Key(0.1, number("a number in (0, 1]", lambda v: 0 < v <= 1), "§5: ÷10"),
    "schedule.patience": Key(4, whole(0), "not in the paper: our choice"),
    "schedule.max_reductions": Key(3, whole(0), "§5: reduced three times prior to termination"),
    "schedule.threshold": Key(0.0, number("a number >= 0", lambda v: v >= 0),
                              "any improvement counts"),
    "schedule.events": Key([], Rule("a list of {epoch, lr?, lighting?, layers?}", lambda v: (
        isinstance(v, list) and all(isinstance(e, dict) for e in v))),
        "for name=events (checked by the schedule)"),
    "quick": Key("auto", one_of(True, False, "auto"),
                 "auto = on without CUDA: a short run that finishes on a laptop CPU"),
    "quick_overrides": Key({}, MAPPING,
                           "dotted KEY: VALUE applied when quick is on (set by each recipe)"),
    "train_batches": Key(None, whole(1).or_null(),
                         "cap on batches per epoch (a training subset); null = all"),
    "seed": Key(0, whole(0, 2**63 - 1), "every random draw follows from it"),
    "deterministic": Key(False, BOOL, "torch.use_deterministic_algorithms: bitwise resume "
                                      "on CPU"),
    "device": Key("auto", Rule("auto, cpu, cuda or cuda:N",
                               lambda v: isinstance(v, str) and v != ""),
                  "auto = cuda when available, else cpu"),
    "compile": Key(True, BOOL, "torch.compile on CUDA (never on CPU: compile time beats the "
                               "gain there)"),
    "amp": Key(True, BOOL, "bf16 autocast on CUDA"),
    "channels_last": Key(True, BOOL, "on CUDA"),
    "log_every": Key(50, whole(1), "steps between host syncs (progress bar, finiteness check)"),
    "checkpoint_every": Key(None, whole(1).or_null(),
                            "steps between checkpoints (last.pt) inside an epoch, so a killed "
                            "run loses at most this much work; null = at epoch ends only"),
    "checkpoint_minutes": Key(None, number("a number > 0", lambda v: v > 0).or_null(),
                              "minutes between checkpoints inside an epoch (checked every "
                              "log_every steps); null = no clock"),
    "dist_timeout": Key(1800, number("a number of seconds > 0", lambda v: v > 0),
                        "distributed runs: how long a process waits for the others before "
                        "the job fails naming the silent rank; torch's default, 30 min"),
    "towers": Key(False, BOOL, "§3.2: two-tower model parallelism, one tower per device "
                               "(paper models)"),
    "tower_devices": Key(None, Rule("null or a list of two devices", lambda v: v is None or (
        isinstance(v, list) and len(v) == 2 and all(isinstance(d, str) for d in v))),
        "e.g. [cuda:0, cuda:1]; null = the first two CUDA devices"),
    "distributed": Key({}, MAPPING, "written at start: world_size, per-rank batch, lr rule"),
    "started_from": Key({}, MAPPING, "written at start with init_from: the weights, the "
                                     "layers replaced, adapted and frozen"),
}
SECTIONS = tuple(dict.fromkeys(k.split(".")[0] for k in KEYS if "." in k))

# The options of the models (their defaults: the builders' signatures in alexnet.models).
MODEL_OPTIONS: dict[str, Key] = {
    "lrn": Key(FROM_THE_MODEL, BOOL, "§3.3: local response normalization after conv1, conv2"),
    "pool": Key(FROM_THE_MODEL, one_of("overlap", "non-overlap"),
                "§3.4: overlapping pooling z=3, s=2; non-overlap: z=s=2"),
    "activation": Key(FROM_THE_MODEL, one_of("relu", "tanh"), "§3.1: ReLU; tanh: Fig. 1"),
    "dropout": Key(FROM_THE_MODEL, number("a probability in [0, 1)", lambda v: 0 <= v < 1),
                   "§4.2: 0.5 on fc6's and fc7's outputs"),
    "image_size": IMAGE_SIDE,
    "init": Key(FROM_THE_MODEL, one_of("paper", "original", "xavier").or_null(),
                "§5: N(0, 0.01²); original: layers-145.cfg; xavier: d2l's; null = the variant's"),
    "lrn_alpha_over_n": Key(FROM_THE_MODEL, BOOL, "layer.py divides α by n, as torch does; "
                                                  "false: §3.3's formula as printed"),
    "lrn_per_tower": Key(FROM_THE_MODEL, BOOL, "§3.2: two-tower models keep the LRN window in "
                                               "its tower"),
    "dropout_scaling": Key(FROM_THE_MODEL, one_of("test", "train"),
                           "§4.2: ×0.5 at test; train: inverted dropout (PyTorch, Caffe)"),
    "lrn_k": Key(FROM_THE_MODEL, number("a number > 0", lambda v: v > 0),
                 "§3.3: k=2; Caffe's bvlc_alexnet (alexnet import caffe): 1"),
    "init_bias": Key(FROM_THE_MODEL, number("a number", lambda v: True),
                     "§5: biases of 1 in conv2, conv4, conv5, fc6, fc7; Caffe: 0.1 "
                     "(docs/paper-facts.md)"),
    "remove_conv": Key(FROM_THE_MODEL, Rule("null, 2, 3, 4 or 5", lambda v: v is None or (
        is_whole(v) and v in (2, 3, 4, 5))),
        "§7: removing a middle conv layer costs about 2% top-1; the next layer takes the "
        "removed one's input maps (conv4 gone: conv5 sees conv3's 384), the smallest change "
        "that keeps the shapes; null = all five"),
}
SET_BY_THE_DATA = ("num_classes", "in_channels")


def defaults() -> dict[str, Any]:
    """The nested default config. Of `data`, only `source`: the other data keys are resolved
    per source by `DataConfig.resolved()` (a resolved config names those a recipe set)."""
    cfg: dict[str, Any] = {}
    for key, spec in KEYS.items():
        if key.startswith("data.") and key != "data.source":
            continue
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = copy.deepcopy(spec.default)
    return cfg


def _close(word: str, choices: list[str]) -> str:
    near = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {near[0]}?)" if near else ""


def unknown_key(key: str) -> str | None:
    """Why `key` is not a config key, or None. `model.X` keys are checked against the chosen
    model once the config is merged (`model_key_problems`)."""
    parts = key.split(".")
    if key in KEYS or key in SECTIONS or (parts[0] == "model" and len(parts) == 2):
        return None
    if parts[0] in SECTIONS and len(parts) > 1:
        valid = [k for k in KEYS if k.startswith(parts[0] + ".")]
        return (f"unknown config key {key!r}{_close(key, valid)}; valid {parts[0]} keys: "
                f"{', '.join(valid)}")
    valid = [k for k in KEYS if "." not in k] + [f"{s}.*" for s in SECTIONS]
    return (f"unknown config key {key!r}{_close(key, list(KEYS))}; valid keys: "
            f"{', '.join(valid)} (`alexnet recipes --keys` lists them all)")


def set_dotted(cfg: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in `cfg`; an unknown key raises `ConfigError` naming the valid ones."""
    problem = unknown_key(key)
    if problem:
        raise ConfigError(problem)
    node = cfg
    *parents, leaf = key.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value


def merge(cfg: dict[str, Any], updates: dict[str, Any], prefix: str = "") -> None:
    """Deep-merge nested `updates` (a recipe) into `cfg`, checking every key."""
    for key, value in updates.items():
        dotted = prefix + key
        if dotted in SECTIONS and isinstance(value, dict):
            set_dotted(cfg, dotted, cfg.get(dotted) if isinstance(cfg.get(dotted), dict)
                       else {})
            merge(cfg, value, dotted + ".")
        else:
            set_dotted(cfg, dotted, copy.deepcopy(value))


def _builder_options(name: str) -> dict[str, inspect.Parameter]:
    params = inspect.signature(model_info(name).builder).parameters
    return {k: p for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def model_key_problems(name: Any, options: dict[str, Any], prefix: str = "model.") -> list[str]:
    """Options that model `name` does not take, one line each naming the ones it takes."""
    if not isinstance(name, str) or name not in list_models():
        return []  # check_model_options names the valid models
    valid = _builder_options(name)
    return [f"{prefix}{key}={value!r}: model {name!r} has no option {key!r}"
            f"{_close(key, list(valid))}; its options: {', '.join(valid)}"
            for key, value in options.items() if key not in valid and key not in SET_BY_THE_DATA]


def derive_sizes(cfg: dict[str, Any]) -> None:
    """Fill `data.crop` and `data.resize` from `model.image_size` (the side the network sees)
    where the config does not set them; values of the wrong type are left to the checks.

    - `data.crop`: true = crop `model.image_size`; false = no crop; unset = a crop on image
      trees and prepared folders (§4.1), none on fashion-mnist/cifar10 or when only
      `data.resize` is set (DataConfig's rule).
    - `data.resize`: without a crop, `model.image_size`; with one, §2's 256 for 224 on image
      trees (`alexnet.data.config.resize_for_crop`), left for `DataConfig.resolved()` to
      fill, since it depends on the source, which `alexnet eval --data` may change.
    """
    model, data = cfg.get("model"), cfg.get("data")
    if not isinstance(model, dict) or not isinstance(data, dict):
        return
    size, crop, resize = model.get("image_size", IMAGE_SIZE), data.get("crop"), data.get("resize")
    if not (crop is None or isinstance(crop, bool) or is_whole(crop)) \
            or not (resize is None or is_whole(resize)):
        return
    if not is_whole(size):
        size = IMAGE_SIZE  # the checks name the bad model.image_size: one value, one line
    if crop is True or (crop is None and resize is None and data.get("source")
                        not in SMALL_DATASETS):
        crop = size
    elif crop is False:
        crop = None
    data["crop"] = crop
    if crop is None and resize is None:
        data["resize"] = size


def resolve_config(recipe: dict[str, Any], overrides: dict[str, Any] | None = None,
                   *, cuda: bool | None = None, model: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """defaults() <- recipe <- (quick_overrides if quick) <- overrides; returns a new dict
    with the sizes derived (`derive_sizes`). Unknown keys, the model's included, raise
    `ConfigError`; the values are checked by `validate_config`.

    `quick: auto` becomes true when CUDA is absent (`cuda` overrides the detection in tests).
    `model` (the model of init_from's weights) replaces the recipe's model section, quick's
    model keys included; the overrides' `model.*` keys still apply on top.
    """
    overrides = overrides or {}

    def build(with_quick: bool) -> dict[str, Any]:
        cfg = defaults()
        merge(cfg, recipe)
        quick_overrides = cfg.get("quick_overrides") or {}
        for key in quick_overrides:  # checked whether quick is on or not
            if unknown_key(key):
                raise ConfigError(f"quick_overrides: {unknown_key(key)}")
        if with_quick:
            for key, value in quick_overrides.items():
                set_dotted(cfg, key, copy.deepcopy(value))
        if model is not None:
            cfg["model"] = copy.deepcopy(model)
        for key, value in overrides.items():
            set_dotted(cfg, key, copy.deepcopy(value))
        return cfg

    cfg = build(False)
    quick = cfg["quick"]
    if quick == "auto":
        quick = not (torch.cuda.is_available() if cuda is None else cuda)
    if not isinstance(quick, bool):
        raise ConfigError(f"quick={cfg['quick']!r}: expected true, false or auto")
    if quick:
        cfg = build(True)
    cfg["quick"] = quick
    model = cfg["model"] if isinstance(cfg.get("model"), dict) else {}
    problems = model_key_problems(model.get("name"), {k: v for k, v in model.items()
                                                      if k != "name"})
    if problems:
        raise ConfigError("\n".join(problems))
    derive_sizes(cfg)
    return cfg


def dump_config(cfg: dict[str, Any]) -> str:
    """The resolved config as YAML (keys in KEYS order)."""
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None, allow_unicode=True)


def key_table() -> str:
    """`alexnet recipes --keys`: every key with its default, what is allowed and why."""
    def row(key: str, spec: Key) -> str:
        default = "" if spec.default is FROM_THE_MODEL else \
            f" = {json.dumps(spec.default, ensure_ascii=False)}"
        return f"{key}{default}\n    {spec.rule.allowed}; {spec.why}"

    lines = [row(k, s) for k, s in KEYS.items()]
    lines.append("model options (besides name and image_size), per model; defaults from "
                 "`alexnet summary MODEL --json`:")
    for key, spec in MODEL_OPTIONS.items():
        if key != "image_size":
            models = [m for m in list_models() if key in _builder_options(m)]
            lines.append(row(f"model.{key}", spec) + f" [{', '.join(models)}]")
    return "\n".join(lines)


# ---------------------------------------------------------------- the checks: before any build

# An option of a future model that MODEL_OPTIONS does not list: its default's type.
_BY_TYPE = ((bool, BOOL), (int, Rule("a whole number", is_whole)),
            (float, Rule("a number", is_number)), (str, TEXT))


def _option_problem(prefix: str, key: str, value: Any, default: Any) -> str | None:
    """A model option's value against `MODEL_OPTIONS` (else its default's type)."""
    spec = MODEL_OPTIONS.get(key) or Key(default, next(
        (rule for kind, rule in _BY_TYPE if isinstance(default, kind)), ANY), "")
    return spec.problem(prefix + key, value)


def check_model_options(name: Any, options: dict[str, Any], *, num_classes: int = 1000,
                        in_channels: int = 3, prefix: str = "model.") -> list[str]:
    """Problems with a model name and its options, one line each: names against the builder's
    signature, values against `MODEL_OPTIONS`, then a build on the meta device (no memory)
    that catches the rest, and the parameter count against `MAX_PARAMETERS`."""
    if not isinstance(name, str) or name not in list_models():
        label = "model.name=" if prefix == "model." else "model "
        return [f"{label}{name!r}: unknown model; valid models: {', '.join(list_models())}"]
    errors = [f"{prefix}{key}={options[key]!r}: set by the data, not the config; remove it"
              for key in SET_BY_THE_DATA if key in options and prefix == "model."]
    options = {k: v for k, v in options.items() if k not in SET_BY_THE_DATA}
    errors += model_key_problems(name, options, prefix)
    params = _builder_options(name)
    errors += [p for key, value in options.items() if key in params
               and (p := _option_problem(prefix, key, value, params[key].default))]
    if options.get("init") == "xavier" and "init_bias" in options:  # it would be ignored
        errors.append(f"{prefix}init_bias={options['init_bias']!r}: init=xavier sets every bias "
                      "to 0; init_bias is the value of §5's biases of 1 under init=paper or "
                      "original. Drop init_bias or set init=paper")
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


def _unknown_keys(cfg: dict[str, Any]) -> list[str]:
    """Keys of a given config (a checkpoint's, a hand-made one) that the schema does not know."""
    errors = []
    for key, value in cfg.items():
        if key in SECTIONS and isinstance(value, dict):
            if key in ("model", "data"):
                continue  # checked by check_model_options and DataConfig.from_dict
            errors += [p for k in value if (p := unknown_key(f"{key}.{k}"))]
        elif key in SECTIONS:
            errors.append(f"{key}={value!r}: expected a mapping of {key}.* keys")
        elif (p := unknown_key(key)):
            errors.append(p)
    return errors


def _size_problem(model: dict[str, Any], data: DataConfig) -> str | None:
    """Where `model.image_size` and the data's output side disagree: the key to change."""
    size = model.get("image_size", IMAGE_SIZE)
    r = data.resolved()
    if r.crop is not None and r.crop != size:
        return (f"data.crop={r.crop} disagrees with model.image_size={size}: the network sees "
                f"the crop. Set model.image_size={r.crop} (data.crop and data.resize follow "
                "from it) or drop data.crop")
    if r.crop is None and r.resize != size:
        return (f"data.resize={r.resize} (no crop) disagrees with model.image_size={size}: the "
                f"network sees the resized images. Set model.image_size={r.resize}, or drop "
                f"data.resize, or set data.crop=true to crop {size}-px patches")
    return None


def validate_config(cfg: dict[str, Any]) -> None:
    """Check every value of a resolved config before anything is built; raise one
    `ConfigError` with one line per problem (the key, the value, what is allowed)."""
    errors = _unknown_keys(cfg)
    for key, spec in KEYS.items():
        if key.startswith(("model.", "data.")):
            continue  # below: check_model_options and DataConfig
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is not _MISSING and (p := spec.problem(key, node)):
            errors.append(p)
    if not any(e.startswith("device=") for e in errors):
        problem = check_device(cfg.get("device"))
        errors += [problem] if problem else []
    if cfg.get("towers") and not errors:
        for i, dev in enumerate(cfg.get("tower_devices") or []):
            problem = check_device(dev, f"tower_devices[{i}]")
            errors += [problem] if problem else []
    if not any(e.startswith("schedule") for e in errors) and isinstance(cfg.get("schedule"),
                                                                         dict):
        try:
            build_schedule(cfg["schedule"], 0.01)
        except AlexNetError as err:
            errors.append(f"schedule: {err}")
        except (TypeError, ValueError, KeyError) as err:
            errors.append(f"schedule: {cfg['schedule']!r} is malformed ({err})")
    errors += _finetune_problems(cfg)
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    data_config = None
    try:
        data_config = DataConfig.from_dict(dict(data))
    except AlexNetError as err:
        errors += str(err).splitlines()
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    channels = data.get("channels") or (1 if data.get("source") == "fashion-mnist" else 3)
    options = {k: v for k, v in model.items() if k != "name"}
    model_errors = check_model_options(model.get("name"), options,
                                       in_channels=channels if channels in (1, 3) else 3)
    errors += model_errors
    if data_config is not None and not model_errors:
        problem = _size_problem(model, data_config)
        errors += [problem] if problem else []
    if errors:
        raise ConfigError("\n".join(errors))


def _finetune_problems(cfg: dict[str, Any]) -> list[str]:
    """finetune.* settings that would do nothing or could not be honoured."""
    tune = cfg.get("finetune") if isinstance(cfg.get("finetune"), dict) else {}
    freeze, mult = tune.get("freeze", "none"), tune.get("lr_mult", 1.0)
    set_ = [f"finetune.{k}={v!r}" for k, v in (("freeze", freeze), ("lr_mult", mult))
            if v != KEYS[f"finetune.{k}"].default]
    if set_ and not cfg.get("init_from"):
        return [f"{', '.join(set_)} without init_from: there are no loaded layers to freeze or "
                "slow down; pass --init-from CKPT (or torchvision)"]
    optim = cfg.get("optim") if isinstance(cfg.get("optim"), dict) else {}
    if mult != 1.0 and optim.get("name") == "sgd":
        return [f"finetune.lr_mult={mult!r} with optim.name=sgd: torch.optim.SGD here uses one "
                "rate for every layer; use optim.name=paper (per-layer multipliers)"]
    return []


_MISSING = object()
