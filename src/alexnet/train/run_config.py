"""The run configuration: a recipe (YAML preset) + KEY=VALUE overrides -> one typed `RunConfig`.

`RunConfig` has one dataclass per section (`ModelConfig`, `DataConfig`, `FinetuneConfig`,
`OptimConfig`, `ScheduleConfig`; the run's own keys at the top), each field declared once as a
`Key`: its default, the rule its value must pass and why the default is what it is. `KEYS` (every
dotted key in order), the defaults (`defaults()`), the checks (`validate_config`), the unknown-key
message (`set_dotted`) and the listing (`key_table`, `alexnet recipes --keys`) all come from those
fields. Recipes and overrides are merged as nested mappings (`resolve_config`), then read into a
`RunConfig`; the rest of the package reads attributes (`cfg.optim.lr`). The `model.*` keys other
than `name` and `image_size` are the options of the chosen model (`MODEL_OPTIONS`), checked in one
place against its builder's signature (`check_model_options`).

A resolved config reproduces its run: `config.yaml` holds every value with QUICK applied, the
recipe's name and description, and where it came from (`origin`); read back as a recipe
(`alexnet train --recipe RUN/config.yaml`) it resolves to itself.

`model.image_size` is the side the network sees, stated once; `data.crop` and `data.resize`
follow from it (`derive_sizes`), and a config where they disagree is refused.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import yaml

from alexnet.data.data_config import IMAGE_SIZE, SMALL_DATASETS, DataConfig
from alexnet.devices import check_device
from alexnet.errors import AlexNetError, ConfigError
from alexnet.models import create_model, list_models
from alexnet.models.options import (
    FROM_THE_MODEL,
    IMAGE_SIDE,
    MODEL_OPTIONS,
    SET_BY_THE_DATA,
    builder_options,
    model_key_problems,
    option_problems,
)
from alexnet.schema import (
    BOOL,
    MAPPING,
    TEXT,
    Key,
    Rule,
    is_whole,
    number,
    one_of,
    option,
    parse_overrides,
    parse_value,
    whole,
)
from alexnet.train.optim import OptimConfig
from alexnet.train.schedule import ScheduleConfig, build_schedule

# finetune.freeze: the layers each value keeps fixed (names as in models/paper.py).
FREEZE = {"none": (), "conv1-3": ("conv1", "conv2", "conv3"),
          "features": ("conv1", "conv2", "conv3", "conv4", "conv5"),
          "fc7": ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7")}

__all__ = ["KEYS", "MODEL_OPTIONS", "FinetuneConfig", "ModelConfig", "OptimConfig", "RunConfig",
           "ScheduleConfig", "check_model_options", "defaults", "derive_sizes", "dump_config",
           "key_table", "parse_overrides", "parse_value", "resolve_config", "set_dotted",
           "validate_config"]

MAX_PARAMETERS = 1_000_000_000  # 4 GB of fp32 weights; the paper's net has 61 M


def section(cls: type) -> Any:
    """A `RunConfig` field holding a section (its keys are `NAME.field`)."""
    return field(default_factory=cls, metadata={"section": cls})


@dataclass
class ModelConfig:
    """`model:` the network. `options` are the builder's keyword options besides `image_size`
    (`MODEL_OPTIONS`: lrn, pool, init, ...), checked against its signature; unset ones take the
    builder's defaults (models/)."""

    name: str = option("paper", Rule("a model of `alexnet models`",
                                     lambda v: v in list_models()),
                       "§3.5, Fig. 2: the two-tower network")
    image_size: int = option(IMAGE_SIZE, IMAGE_SIDE.rule, IMAGE_SIDE.why)
    options: dict[str, Any] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        """The builder's keyword arguments (`create_model(name, num_classes=..., **kwargs)`)."""
        return {"image_size": self.image_size, **self.options}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "image_size": self.image_size, **self.options}

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> ModelConfig:
        rest = {k: copy.deepcopy(v) for k, v in mapping.items() if k not in ("name", "image_size")}
        return cls(name=mapping.get("name", "paper"),
                   image_size=mapping.get("image_size", IMAGE_SIZE), options=rest)


@dataclass
class FinetuneConfig:
    """`finetune:` what happens to the layers loaded by `init_from`."""

    freeze: str = option("none", one_of(*FREEZE),
                         "with init_from: layers kept as loaded; conv1-3 = conv1..conv3, "
                         "features = every conv layer, fc7 = all but the new head (a linear "
                         "probe on fc7's features)")
    lr_mult: float = option(1.0, number("a number >= 0", lambda v: v >= 0),
                            "with init_from: rate multiplier of the loaded layers (the new head "
                            "keeps 1); Caffe's fine-tuning example gives them 1/10 of fc8's")


@dataclass
class RunConfig:
    """One training run, resolved: every key of `alexnet recipes --keys`, in the order
    config.yaml lists them. Build it with `resolve_config` (recipe + overrides) or
    `RunConfig.from_dict` (a config.yaml, a checkpoint's config); check it with
    `validate_config`."""

    recipe: str = option("fashion-mnist", Rule("a name", lambda v: isinstance(v, str) and
                                               bool(v)),
                         "the default recipe (recipes/fashion-mnist.yaml)")
    description: str = option("", TEXT, "the recipe's one-line summary")
    model: ModelConfig = section(ModelConfig)
    data: DataConfig = section(DataConfig)
    init_from: str | None = option(
        None, Rule("null, a checkpoint or run folder, torchvision, or a torchvision .pth file",
                   lambda v: isinstance(v, str) and bool(v)).or_null(),
        "fine-tuning: start from these weights (the model follows them); null = a new net "
        "(§5's init)")
    finetune: FinetuneConfig = section(FinetuneConfig)
    epochs: int = option(90, whole(1, 100_000), "§5: roughly 90 cycles through the training set")
    batch_size: int = option(128, whole(1, 1 << 20),
                             "§5; global: split evenly over the processes of a distributed run")
    optim: OptimConfig = section(OptimConfig)
    schedule: ScheduleConfig = section(ScheduleConfig)
    quick: bool | str = option("auto", one_of(True, False, "auto"),
                               "auto = on without CUDA: a short run that finishes on a laptop "
                               "CPU")
    quick_overrides: dict[str, Any] = option(
        {}, MAPPING, "dotted KEY: VALUE applied when quick is on (set by each recipe)")
    train_batches: int | None = option(None, whole(1).or_null(),
                                       "cap on batches per epoch (a training subset); null = all")
    seed: int = option(0, whole(0, 2**63 - 1), "every random draw follows from it")
    deterministic: bool = option(False, BOOL, "torch.use_deterministic_algorithms: bitwise "
                                              "resume on CPU")
    device: str = option("auto", Rule("auto, cpu, cuda or cuda:N",
                                      lambda v: isinstance(v, str) and v != ""),
                         "auto = cuda when available, else cpu")
    compile: bool = option(True, BOOL, "torch.compile on CUDA (never on CPU: compile time beats "
                                       "the gain there)")
    amp: bool = option(True, BOOL, "bf16 autocast on CUDA")
    channels_last: bool = option(True, BOOL, "on CUDA")
    log_every: int = option(50, whole(1), "steps between host syncs (progress bar, finiteness "
                                          "check)")
    checkpoint_every: int | None = option(
        None, whole(1).or_null(), "steps between checkpoints (last.pt) inside an epoch, so a "
        "killed run loses at most this much work; null = at epoch ends only")
    checkpoint_minutes: float | None = option(
        None, number("a number > 0", lambda v: v > 0).or_null(),
        "minutes between checkpoints inside an epoch (checked every log_every steps); null = "
        "no clock")
    dist_timeout: float = option(
        1800, number("a number of seconds > 0", lambda v: v > 0),
        "distributed runs: how long a process waits for the others before the job fails naming "
        "the silent rank; torch's default, 30 min")
    towers: bool = option(False, BOOL, "§3.2: two-tower model parallelism, one tower per device "
                                       "(paper models)")
    tower_devices: list[str] | None = option(None, Rule(
        "null or a list of two devices", lambda v: v is None or (
            isinstance(v, list) and len(v) == 2 and all(isinstance(d, str) for d in v))),
        "e.g. [cuda:0, cuda:1]; null = the first two CUDA devices")
    distributed: dict[str, Any] = option({}, MAPPING, "written at start: world_size, per-rank "
                                                      "batch, lr rule")
    started_from: dict[str, Any] = option({}, MAPPING, "written at start with init_from: the "
                                                       "weights, the layers replaced, adapted "
                                                       "and frozen")
    origin: dict[str, Any] = option({}, MAPPING, "written when resolved: the recipe and "
                                                 "overrides it came from, whether QUICK was "
                                                 "applied (a config.yaml read back as a recipe "
                                                 "is not changed again)")

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> RunConfig:
        """A config from its nested mapping (config.yaml, a checkpoint's `config`). Unknown keys
        and sections that are not mappings raise one `ConfigError`; the values are checked by
        `validate_config`."""
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"a run config must be a mapping of keys, not {mapping!r}")
        errors = _unknown_keys(dict(mapping))
        if errors:
            raise ConfigError("\n".join(errors))
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in mapping:
                continue
            value, kind = mapping[f.name], f.metadata.get("section")
            if kind is ModelConfig:
                kwargs[f.name] = ModelConfig.from_dict(value)
            elif kind is not None:
                kwargs[f.name] = kind(**copy.deepcopy(dict(value)))
            else:
                kwargs[f.name] = copy.deepcopy(value)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The nested mapping config.yaml and checkpoints hold (plain YAML types)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, ModelConfig):
                out[f.name] = value.to_dict()
            elif dataclasses.is_dataclass(value):
                out[f.name] = copy.deepcopy(dataclasses.asdict(value))
            else:
                out[f.name] = copy.deepcopy(value)
        return out

    def with_values(self, values: Mapping[str, Any]) -> RunConfig:
        """A copy with dotted keys set (`{"device": "cpu", "optim.lr": 0.02}`), unknown keys
        refused as in overrides."""
        mapping = self.to_dict()
        for key, value in values.items():
            set_dotted(mapping, key, copy.deepcopy(value))
        return RunConfig.from_dict(mapping)


def _keys_of(cls: type, prefix: str = "") -> dict[str, Key]:
    """The `Key` of every field of a config dataclass, sections expanded (`optim.lr`)."""
    keys: dict[str, Key] = {}
    for f in dataclasses.fields(cls):
        if "key" in f.metadata:
            keys[prefix + f.name] = f.metadata["key"]
        elif "section" in f.metadata:
            keys.update(_keys_of(f.metadata["section"], f"{prefix}{f.name}."))
    return keys


# Every key of a run, in the order a resolved config is written.
KEYS: dict[str, Key] = _keys_of(RunConfig)
SECTIONS = tuple(dict.fromkeys(k.split(".")[0] for k in KEYS if "." in k))



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


def derive_sizes(cfg: dict[str, Any]) -> None:
    """Fill `data.crop` and `data.resize` from `model.image_size` (the side the network sees)
    where the config does not set them; values of the wrong type are left to the checks.

    - `data.crop`: true = crop `model.image_size`; false = no crop; unset = a crop on image
      trees and prepared folders (§4.1), none on fashion-mnist/cifar10 or when only
      `data.resize` is set (DataConfig's rule).
    - `data.resize`: without a crop, `model.image_size`; with one, §2's 256 for 224 on image
      trees (`alexnet.data.data_config.resize_for_crop`), left for `DataConfig.resolved()` to
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


def resolve_config(recipe: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
                   *, cuda: bool | None = None, model: Mapping[str, Any] | None = None,
                   source: str | None = None) -> RunConfig:
    """defaults() <- recipe <- (quick_overrides if quick) <- overrides, as a `RunConfig` with
    the sizes derived (`derive_sizes`) and `origin` recorded. Unknown keys, the model's
    included, raise `ConfigError`; the values are checked by `validate_config`.

    `quick: auto` becomes true when CUDA is absent (`cuda` overrides the detection in tests).
    `model` (the model of init_from's weights) replaces the recipe's model section, quick's
    model keys included; the overrides' `model.*` keys still apply on top. `source` names where
    the recipe came from (a recipe name or a file), for `origin`.

    A resolved config given as the recipe (it has an `origin`: a run's config.yaml) resolves to
    itself: QUICK's overrides are already in its values and are not applied again, and its model
    section is kept as it is.
    """
    overrides = dict(overrides or {})
    resolved = isinstance(recipe.get("origin"), Mapping) and bool(recipe.get("origin"))

    def build(with_quick: bool) -> dict[str, Any]:
        cfg = defaults()
        merge(cfg, dict(recipe))
        quick_overrides = cfg.get("quick_overrides") or {}
        for key in quick_overrides:  # checked whether quick is on or not
            if unknown_key(key):
                raise ConfigError(f"quick_overrides: {unknown_key(key)}")
        if with_quick:
            for key, value in quick_overrides.items():
                set_dotted(cfg, key, copy.deepcopy(value))
        if model is not None and not resolved:
            cfg["model"] = copy.deepcopy(dict(model))
        for key, value in overrides.items():
            set_dotted(cfg, key, copy.deepcopy(value))
        return cfg

    cfg = build(False)
    quick = cfg["quick"]
    if resolved and recipe.get("quick") is True and quick is not True:
        raise ConfigError(
            f"{source or 'this config'} is a resolved QUICK config: its values already hold "
            "QUICK's overrides, so quick=false (--full) cannot undo them; for the full run use "
            f"--recipe {recipe['origin'].get('recipe', recipe.get('recipe'))} --full")
    if quick == "auto":
        quick = not (torch.cuda.is_available() if cuda is None else cuda)
    if not isinstance(quick, bool):
        raise ConfigError(f"quick={cfg['quick']!r}: expected true, false or auto")
    if quick and not resolved:
        cfg = build(True)
    cfg["quick"] = quick
    model_section = cfg["model"] if isinstance(cfg.get("model"), dict) else {}
    problems = model_key_problems(model_section.get("name"),
                                  {k: v for k, v in model_section.items() if k != "name"})
    if problems:
        raise ConfigError("\n".join(problems))
    derive_sizes(cfg)
    cfg["origin"] = {
        "recipe": source or cfg.get("recipe"),
        "overrides": copy.deepcopy(overrides),
        "quick_overrides": ("already in the values (a resolved config)" if resolved
                            else "applied" if quick else "not applied"),
    }
    return RunConfig.from_dict(cfg)


def dump_config(cfg: RunConfig | Mapping[str, Any]) -> str:
    """The resolved config as YAML (keys in KEYS order)."""
    mapping = cfg.to_dict() if isinstance(cfg, RunConfig) else dict(cfg)
    return yaml.safe_dump(mapping, sort_keys=False, default_flow_style=None, allow_unicode=True)


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
            models = [m for m in list_models() if key in builder_options(m)]
            lines.append(row(f"model.{key}", spec) + f" [{', '.join(models)}]")
    return "\n".join(lines)


# ---------------------------------------------------------------- the checks: before any build

def check_model_options(name: Any, options: dict[str, Any], *, num_classes: int = 1000,
                        in_channels: int = 3, prefix: str = "model.") -> list[str]:
    """Problems with a model name and its options, one line each: names against the builder's
    signature and `MODEL_OPTIONS` (`alexnet.models.options`, the one place), then a build on
    the meta device (no memory)
    that catches the rest, and the parameter count against `MAX_PARAMETERS`."""
    if not isinstance(name, str) or name not in list_models():
        label = "model.name=" if prefix == "model." else "model "
        return [f"{label}{name!r}: unknown model; valid models: {', '.join(list_models())}"]
    errors = [f"{prefix}{key}={options[key]!r}: set by the data, not the config; remove it"
              for key in SET_BY_THE_DATA if key in options and prefix == "model."]
    options = {k: v for k, v in options.items() if k not in SET_BY_THE_DATA}
    errors += option_problems(name, options, prefix)
    if errors:
        return errors
    params = builder_options(name)
    # The init does not change shapes; xavier's uniform_ builds on the meta device at once,
    # where normal_ would first import torch._dynamo (seconds).
    shapes_only = dict(options)
    if "init" in params:
        shapes_only.pop("init_bias", None)  # xavier's biases are 0: init_bias would be refused
        shapes_only["init"] = "xavier"
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


def validate_config(config: RunConfig | Mapping[str, Any]) -> None:
    """Check every value of a resolved config before anything is built; raise one
    `ConfigError` with one line per problem (the key, the value, what is allowed)."""
    cfg = config.to_dict() if isinstance(config, RunConfig) else dict(config)
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
            build_schedule(ScheduleConfig(**cfg["schedule"]), 0.01)
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
