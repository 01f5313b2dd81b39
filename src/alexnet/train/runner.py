"""What `alexnet train` and `alexnet recipes` do, as library functions the CLI dispatches to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alexnet.checkpoint import load_checkpoint
from alexnet.errors import CheckpointError, ConfigError
from alexnet.recipes import DEFAULT_RECIPE, list_recipes, load_recipe
from alexnet.train.config import (
    FROM_THE_MODEL,
    KEYS,
    MODEL_OPTIONS,
    key_table,
    parse_overrides,
    resolve_config,
    set_dotted,
    validate_config,
)
from alexnet.train.finetune import init_model_config
from alexnet.train.loop import train
from alexnet.train.run_folder import default_run_dir

__all__ = ["RESUMABLE", "default_run_dir", "key_rows", "key_table", "recipe_rows",
           "recipe_table", "run_training"]


# What a resumed run may change: none of them changes the numbers an uninterrupted run gives.
RESUMABLE = {"epochs": "train for more (or fewer) epochs",
             "log_every": "steps between progress updates",
             "device": "where to run (auto, cpu, cuda, cuda:N)",
             "data.workers": "loader processes (the order and augmentation do not depend on it)"}


def run_training(*, recipe: str | None = None, data: str | None = None, out: str | None = None,
                 resume: str | None = None, full: bool = False, force: bool = False,
                 overrides: list[str] | None = None, init_from: str | None = None
                 ) -> dict[str, Any]:
    """`alexnet train`: resolve recipe + overrides (or take a run's own config to resume).
    `init_from` (a checkpoint, a run folder or `torchvision`) starts from trained weights."""
    pairs = parse_overrides(overrides or [])
    if resume is not None:
        if init_from is not None:
            raise ConfigError("--resume continues a run from its own last.pt; drop --init-from")
        return _resume(resume, pairs, recipe=recipe, data=data, out=out, full=full, force=force)
    if data is not None:
        pairs["data.source"] = data
    if full:
        pairs["quick"] = False
    if init_from is not None:
        pairs["init_from"] = init_from
    recipe_map = load_recipe(recipe or DEFAULT_RECIPE)
    cfg = resolve_config(recipe_map, pairs)
    if not cfg["data"].get("source"):
        raise ConfigError(f"recipe {cfg['recipe']!r} needs a dataset: pass --data PATH (an "
                          "ILSVRC-2012 tree, an image folder or a folder made by "
                          "`alexnet prepare`)")
    init = None
    if cfg.get("init_from"):  # the model is the loaded one; model.* overrides still apply
        init = load_checkpoint(cfg["init_from"])
        cfg = resolve_config(recipe_map, pairs, model=init_model_config(init))
    return train(cfg, out or default_run_dir(cfg["recipe"]), force=force, init=init)


def _resume(run_dir: str, pairs: dict[str, Any], *, recipe: str | None, data: str | None,
            out: str | None, full: bool, force: bool) -> dict[str, Any]:
    """`--resume RUN`: the run's own config; only the RESUMABLE keys may change."""
    given = [flag for flag, v in (("--recipe", recipe), ("--data", data), ("--out", out),
                                  ("--full", full), ("--force", force)) if v]
    if given:
        raise ConfigError(f"--resume continues a run with its own recipe, data and folder; drop "
                          f"{'/'.join(given)} (to start over in {run_dir}: --out {run_dir} "
                          "--force)")
    refused = [f"{k}={v!r}" for k, v in pairs.items() if k not in RESUMABLE]
    if refused:
        raise ConfigError(f"--resume cannot change {', '.join(refused)}: the resumed run would "
                          "no longer be the run it continues. Allowed with --resume: "
                          f"{', '.join(RESUMABLE)}; for other values start a new run")
    state = load_checkpoint(Path(run_dir) / "last.pt")
    cfg = state.get("config")
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{Path(run_dir) / 'last.pt'} has no run config; it was not "
                              "written by `alexnet train`")
    for key, value in pairs.items():
        set_dotted(cfg, key, value)
    try:
        validate_config(cfg)
    except ConfigError as err:
        if pairs:
            raise
        raise CheckpointError(f"the config stored in {Path(run_dir) / 'last.pt'} is not valid "
                              f"for this version:\n{err}") from None
    done, batch = int(state.get("epoch", 0)), int(state.get("batch", 0))
    if done >= cfg["epochs"] and batch == 0:
        raise ConfigError(f"{run_dir} has finished: {done} of epochs={cfg['epochs']} done; "
                          f"to train further pass a larger value, e.g. `alexnet train --resume "
                          f"{run_dir} epochs={done + 10}`")
    changes = ", ".join(f"{k}={v}" for k, v in pairs.items())
    print(f"resuming {run_dir} at epoch {done + 1}, batch {batch}"
          + (f", with {changes}" if changes else ""), flush=True)
    return train(cfg, run_dir, resume=True, state=state)


def recipe_table() -> str:
    """`alexnet recipes`: one line per shipped recipe."""
    rows = []
    for name in list_recipes():
        recipe = load_recipe(name)
        model = (recipe.get("model") or {}).get("name", "paper")
        note = " (default)" if name == DEFAULT_RECIPE else ""
        rows.append(f"{name + note:<24} model {model:<9} {recipe.get('description', '')}")
    return "\n".join(rows)


def recipe_rows() -> list[dict[str, Any]]:
    """`alexnet recipes --json`: each shipped recipe's name, model and description."""
    return [{"name": name, "model": (load_recipe(name).get("model") or {}).get("name", "paper"),
             "description": load_recipe(name).get("description", ""),
             "default": name == DEFAULT_RECIPE} for name in list_recipes()]


def key_rows() -> list[dict[str, Any]]:
    """`alexnet recipes --keys --json`: `key_table`'s keys as records."""
    return [{"key": key, "default": None if spec.default is FROM_THE_MODEL else spec.default,
             "allowed": spec.rule.allowed, "why": spec.why}
            for key, spec in [*KEYS.items(),
                              *((f"model.{k}", s) for k, s in MODEL_OPTIONS.items()
                                if k != "image_size")]]
