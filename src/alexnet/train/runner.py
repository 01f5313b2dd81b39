"""What `alexnet train` and `alexnet recipes` do, as library functions the CLI dispatches to."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from alexnet.errors import ConfigError
from alexnet.recipes import DEFAULT_RECIPE, list_recipes, load_recipe
from alexnet.train.config import parse_overrides, resolve_config, set_dotted
from alexnet.train.loop import resume_config, train


def default_run_dir(recipe: str) -> Path:
    """runs/<recipe>-<time>; the processes of one torchrun job agree on it through the run id."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    stamp = run_id if run_id and run_id != "none" else time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{recipe}-{stamp}"


def run_training(*, recipe: str | None = None, data: str | None = None, out: str | None = None,
                 resume: str | None = None, full: bool = False,
                 overrides: list[str] | None = None) -> dict[str, Any]:
    """`alexnet train`: resolve recipe + overrides (or take a run's own config to resume)."""
    pairs = parse_overrides(overrides or [])
    if resume is not None:
        if recipe or data or out:
            raise ConfigError("--resume continues a run with its own recipe, data and folder; "
                              "drop --recipe/--data/--out (KEY=VALUE overrides are allowed)")
        cfg = resume_config(resume)
        for key, value in pairs.items():
            set_dotted(cfg, key, value)
        return train(cfg, resume, resume=True)
    if data is not None:
        pairs["data.source"] = data
    if full:
        pairs["quick"] = False
    cfg = resolve_config(load_recipe(recipe or DEFAULT_RECIPE), pairs)
    if not cfg["data"].get("source"):
        raise ConfigError(f"recipe {cfg['recipe']!r} needs a dataset: pass --data PATH (an "
                          "ILSVRC-2012 tree, an image folder or a folder made by "
                          "`alexnet prepare`)")
    return train(cfg, out or default_run_dir(cfg["recipe"]))


def recipe_table() -> str:
    """`alexnet recipes`: one line per shipped recipe."""
    rows = []
    for name in list_recipes():
        recipe = load_recipe(name)
        model = (recipe.get("model") or {}).get("name", "paper")
        note = " (default)" if name == DEFAULT_RECIPE else ""
        rows.append(f"{name + note:<24} model {model:<9} {recipe.get('description', '')}")
    return "\n".join(rows)
