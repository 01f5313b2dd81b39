"""Recipes: YAML presets shipped with the package (`alexnet recipes` lists them)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from alexnet.errors import ConfigError

DEFAULT_RECIPE = "fashion-mnist"


def _files() -> dict[str, Any]:
    return {p.name[:-5]: p for p in resources.files(__name__).iterdir()
            if p.name.endswith(".yaml")}


def list_recipes() -> list[str]:
    """Names of the shipped recipes, default first."""
    names = sorted(_files())
    return sorted(names, key=lambda n: n != DEFAULT_RECIPE)


def load_recipe(name_or_path: str) -> dict[str, Any]:
    """A shipped recipe by name, or a YAML file by path; `recipe` is set to its name."""
    files = _files()
    if name_or_path in files:
        text, name = files[name_or_path].read_text(), name_or_path
    elif name_or_path.endswith((".yaml", ".yml")) and Path(name_or_path).is_file():
        text, name = Path(name_or_path).read_text(), Path(name_or_path).stem
    else:
        raise ConfigError(f"unknown recipe {name_or_path!r}; valid recipes: "
                          f"{', '.join(list_recipes())} (or a path to a .yaml file)")
    try:
        recipe = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"recipe {name_or_path!r} is not valid YAML: {err}") from None
    if not isinstance(recipe, dict):
        raise ConfigError(f"recipe {name_or_path!r} must be a YAML mapping")
    # A file names itself by its `recipe:` key where it has one (a run's config.yaml keeps the
    # name of the recipe it was resolved from), else by its file name.
    name = recipe.get("recipe") if isinstance(recipe.get("recipe"), str) and recipe.get(
        "recipe") else name
    base = recipe.pop("extends", None)  # `extends: paper`: that recipe, with these keys on top
    if base is not None:
        if base == name:
            raise ConfigError(f"recipe {name_or_path!r} extends itself")
        recipe = _deep_merge(load_recipe(str(base)), recipe)
    recipe["recipe"] = name
    return recipe


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
