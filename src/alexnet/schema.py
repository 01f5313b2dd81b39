"""The building blocks of the run config's schema, and the one KEY=VALUE parser.

A `Key` declares one config key: its default, the `Rule` its value must pass (with the text
that says what is allowed) and why the default is what it is (a paper section or a file of the
released code). `alexnet.train.run_config.KEYS` and `alexnet.data.data_config.DataConfig` are
made of them. Kept free of torch so that the CLI can parse `KEY=VALUE` without loading it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from alexnet.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """What a value may be: `allowed` says it in words, `check` decides."""

    allowed: str
    check: Callable[[Any], bool]

    def __call__(self, value: Any) -> bool:
        return self.check(value)

    def or_null(self) -> Rule:
        return Rule(f"null or {self.allowed}", lambda v: v is None or self.check(v))


@dataclass(frozen=True)
class Key:
    """One config key: default, rule, and where the default comes from."""

    default: Any
    rule: Rule
    why: str

    def problem(self, name: str, value: Any) -> str | None:
        """`name=value: expected ...` when `value` breaks the rule, else None."""
        return None if self.rule(value) else f"{name}={value!r}: expected {self.rule.allowed}"


def is_whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def whole(lo: int, hi: int | None = None) -> Rule:
    text = f"a whole number >= {lo}" + (f" and <= {hi:,}" if hi is not None else "")
    return Rule(text, lambda v: is_whole(v) and v >= lo and (hi is None or v <= hi))


def number(text: str, ok: Callable[[float], bool]) -> Rule:
    return Rule(text, lambda v: is_number(v) and ok(v))


def one_of(*choices: Any) -> Rule:
    """Exact choices: `one_of(True, False, "auto")` refuses 1 and 0."""
    def ok(v: Any) -> bool:
        return isinstance(v, str | bool) and any(
            v is c or (isinstance(v, str) and v == c) for c in choices)

    return Rule("one of " + ", ".join(map(str, choices)), ok)


BOOL = Rule("true or false", lambda v: isinstance(v, bool))
TEXT = Rule("text", lambda v: isinstance(v, str))
MAPPING = Rule("a mapping of KEY: VALUE", lambda v: isinstance(v, dict))
ANY = Rule("anything", lambda v: True)


def option(default: Any, rule: Rule, why: str) -> Any:
    """A dataclass field declared as a `Key` (see `keys_of`); a list or mapping default is
    copied for each instance."""
    meta = {"key": Key(default, rule, why)}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def keys_of(cls: type) -> dict[str, Key]:
    """The `Key` of each field of a dataclass made with `option(...)`."""
    return {f.name: f.metadata["key"] for f in dataclasses.fields(cls)}


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


def parse_overrides(items: list[str], *, what: str = "override",
                    example: str = "optim.lr=0.02") -> dict[str, Any]:
    """["optim.lr=0.02", "epochs=3"] -> {"optim.lr": 0.02, "epochs": 3}: the one KEY=VALUE
    parser (`alexnet train`, `alexnet summary`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {item!r} is not KEY=VALUE (e.g. {example})")
        out[key.strip()] = parse_value(value)
    return out
