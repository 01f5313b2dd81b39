"""The options of the models, declared once: `MODEL_OPTIONS` says what each value may be and
why; the builders' signatures (`alexnet.models.create_model`'s registry) say which model takes
which and its default. `option_problems` checks both, for `create_model` and for the run
config's `model.*` keys alike (`alexnet.train.run_config.check_model_options` adds a build on the
meta device and the parameter count)."""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from alexnet.models.registry import list_models, model_info
from alexnet.schema import (
    ANY,
    BOOL,
    TEXT,
    Key,
    Rule,
    is_number,
    is_whole,
    number,
    one_of,
    whole,
)

FROM_THE_MODEL = "the model's"  # the default of a model option: its builder's (models/)

# §4.1: the network sees 224×224 patches; the run config's model.image_size (data.crop and
# data.resize follow from it)
IMAGE_SIDE = Key(224, whole(1, 4096),
                 "§4.1: the network sees 224×224 patches; data.crop and data.resize follow")

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
SET_BY_THE_DATA = ("num_classes", "in_channels")  # create_model's own arguments

# An option of a future model that MODEL_OPTIONS does not list: its default's type.
_BY_TYPE = ((bool, BOOL), (int, Rule("a whole number", is_whole)),
            (float, Rule("a number", is_number)), (str, TEXT))


def builder_options(name: str) -> dict[str, inspect.Parameter]:
    """The keyword options model `name`'s builder takes (its signature), with their defaults."""
    params = inspect.signature(model_info(name).builder).parameters
    return {k: p for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _close(word: str, choices: list[str]) -> str:
    near = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {near[0]}?)" if near else ""


def model_key_problems(name: Any, options: dict[str, Any], prefix: str = "model.") -> list[str]:
    """Options that model `name` does not take, one line each naming the ones it takes."""
    if not isinstance(name, str) or name not in list_models():
        return []  # the caller names the valid models
    valid = builder_options(name)
    return [f"{prefix}{key}={value!r}: model {name!r} has no option {key!r}"
            f"{_close(key, list(valid))}; its options: {', '.join(valid)}"
            for key, value in options.items() if key not in valid and key not in SET_BY_THE_DATA]


def option_problems(name: str, options: dict[str, Any], prefix: str = "") -> list[str]:
    """Problems with model `name`'s `options`, one line each: names against the builder's
    signature, values against `MODEL_OPTIONS` (else the default's type), and the one
    combination that would be silently ignored."""
    errors = model_key_problems(name, options, prefix)
    params = builder_options(name)
    for key, value in options.items():
        if key in params:
            default = params[key].default
            spec = MODEL_OPTIONS.get(key) or Key(default, next(
                (rule for kind, rule in _BY_TYPE if isinstance(default, kind)), ANY), "")
            if (problem := spec.problem(prefix + key, value)):
                errors.append(problem)
    if options.get("init") == "xavier" and "init_bias" in options:  # it would be ignored
        errors.append(f"{prefix}init_bias={options['init_bias']!r}: init=xavier sets every bias "
                      "to 0; init_bias is the value of §5's biases of 1 under init=paper or "
                      "original. Drop init_bias or set init=paper")
    return errors
