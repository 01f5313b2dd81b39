"""What `alexnet train` and `alexnet recipes` do, as library functions the CLI dispatches to:
`fit` (`alexnet.train(...)` in Python) trains and returns the `Run`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from alexnet.errors import CheckpointError, ConfigError
from alexnet.recipes import DEFAULT_RECIPE, list_recipes, load_recipe
from alexnet.train.distributed import torchrun_job
from alexnet.train.elastic import train_elastic
from alexnet.train.finetune import init_model_config
from alexnet.train.loop import train
from alexnet.train.run_config import (
    FROM_THE_MODEL,
    KEYS,
    MODEL_OPTIONS,
    SECTIONS,
    RunConfig,
    key_table,
    parse_overrides,
    resolve_config,
    validate_config,
)
from alexnet.train.run_folder import default_run_dir
from alexnet.weights.checkpoint import load_checkpoint

__all__ = ["RESUMABLE", "Run", "default_run_dir", "fit", "key_rows", "key_table", "recipe_rows",
           "recipe_table", "resolve_training", "run_training"]


# What a resumed run may change: none of them changes the numbers an uninterrupted run gives.
RESUMABLE = {"epochs": "train for more (or fewer) epochs",
             "log_every": "steps between progress updates",
             "device": "where to run (auto, cpu, cuda, cuda:N)",
             "data.workers": "loader processes (the order and augmentation do not depend on it)"}


@dataclass
class Run:
    """A run folder as `alexnet train` leaves it: its resolved config, its metrics (one record
    per epoch and split, metrics.jsonl) and its checkpoints. `summary` is what the training
    call returned (empty for `Run.open`)."""

    dir: Path
    summary: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """An existing run folder (one with a config.yaml)."""
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise ConfigError(f"{path} is not a run folder (no config.yaml); pass a folder made "
                              "by `alexnet train`")
        return cls(path)

    @property
    def config(self) -> RunConfig:
        return RunConfig.from_dict(yaml.safe_load((self.dir / "config.yaml").read_text()))

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """[{"epoch", "split": "train" | "val", "loss", "top1_err", ...}], in order."""
        path = self.dir / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    @property
    def best_checkpoint(self) -> Path | None:
        """best.pt (the lowest validation error), else last.pt, else None."""
        return next((p for p in (self.dir / "best.pt", self.dir / "last.pt") if p.is_file()),
                    None)

    @property
    def interrupted(self) -> bool:
        return bool(self.summary.get("interrupted"))


def fit(recipe: str | None = None, data: str | Path | None = None,
        out: str | Path | None = None, *, resume: str | Path | None = None, full: bool = False,
        force: bool = False, init_from: str | Path | None = None,
        overrides: list[str] | Mapping[str, Any] | None = None, **values: Any) -> Run:
    """Train as `alexnet train` does and return the `Run`. `alexnet.train(...)` calls this.

    Config keys come as `overrides` (["optim.lr=0.02"] or {"optim.lr": 0.02}) and as keyword
    arguments, a section as a mapping: `fit("paper", data="ti10", epochs=2, optim={"lr": 0.02},
    model={"lrn": False})` (`data` is the dataset, as `--data`: the data section's other keys go
    in `overrides`, e.g. {"data.workers": 0}).
    """
    pairs: dict[str, Any] = (dict(overrides) if isinstance(overrides, Mapping)
                             else parse_overrides(list(overrides or [])))
    for key, value in values.items():
        if key in SECTIONS and isinstance(value, Mapping):
            pairs.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            pairs[key] = value
    summary = run_training(recipe=recipe, data=None if data is None else str(data),
                           out=None if out is None else str(out),
                           resume=None if resume is None else str(resume), full=full,
                           force=force, overrides=pairs,
                           init_from=None if init_from is None else str(init_from))
    return Run(Path(summary["run_dir"]), summary)


def resolve_training(*, recipe: str | None = None, data: str | None = None,
                     full: bool = False, overrides: list[str] | dict[str, Any] | None = None,
                     init_from: str | None = None
                     ) -> tuple[RunConfig, dict[str, Any] | None]:
    """The resolved config of `alexnet train` (recipe + --data/--full/--init-from +
    KEY=VALUE overrides), checked, and init_from's checkpoint (loaded) or None. Nothing is
    built: `alexnet train --print-config` prints this config."""
    pairs = dict(overrides) if isinstance(overrides, dict) else parse_overrides(overrides or [])
    if data is not None:
        pairs["data.source"] = data
    if full:
        pairs["quick"] = False
    if init_from is not None:
        pairs["init_from"] = init_from
    source = recipe or DEFAULT_RECIPE
    recipe_map = load_recipe(source)
    cfg = resolve_config(recipe_map, pairs, source=source)
    if not cfg.data.source:
        raise ConfigError(f"recipe {cfg.recipe!r} needs a dataset: pass --data PATH (an "
                          "ILSVRC-2012 tree, an image folder or a folder made by "
                          "`alexnet prepare`)")
    init = None
    if cfg.init_from:  # the model is the loaded one; model.* overrides still apply
        init = load_checkpoint(cfg.init_from)
        cfg = resolve_config(recipe_map, pairs, model=init_model_config(init), source=source)
    validate_config(cfg)
    return cfg, init


def run_training(*, recipe: str | None = None, data: str | None = None, out: str | None = None,
                 resume: str | None = None, full: bool = False, force: bool = False,
                 overrides: list[str] | dict[str, Any] | None = None,
                 init_from: str | None = None) -> dict[str, Any]:
    """`alexnet train`: resolve recipe + overrides (or take a run's own config to resume).
    `init_from` (a checkpoint, a run folder or `torchvision`) starts from trained weights.
    Under torchrun, (re)started workers continue the run in `out` by themselves
    (train/elastic.py)."""
    if resume is not None:
        if init_from is not None:
            raise ConfigError("--resume continues a run from its own last.pt; drop --init-from")
        pairs = dict(overrides) if isinstance(overrides, dict) else \
            parse_overrides(overrides or [])
        return _resume(resume, pairs, recipe=recipe, data=data, out=out, full=full, force=force)
    cfg, init = resolve_training(recipe=recipe, data=data, full=full, overrides=overrides,
                                 init_from=init_from)
    run_dir = out or default_run_dir(cfg.recipe)
    if torchrun_job() is not None:  # torchrun's (re)started workers continue the run there
        return train_elastic(cfg, run_dir, force=force, init=init, resumable=tuple(RESUMABLE))
    return train(cfg, run_dir, force=force, init=init)


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
    stored = state.get("config")
    if not isinstance(stored, dict):
        raise CheckpointError(f"{Path(run_dir) / 'last.pt'} has no run config; it was not "
                              "written by `alexnet train`")
    _check_same_run(Path(run_dir), stored)
    try:
        cfg = RunConfig.from_dict(stored).with_values(pairs)
        validate_config(cfg)
    except ConfigError as err:
        if pairs:
            raise
        raise CheckpointError(f"the config stored in {Path(run_dir) / 'last.pt'} is not valid "
                              f"for this version:\n{err}") from None
    done, batch = int(state.get("epoch", 0)), int(state.get("batch", 0))
    if done >= cfg.epochs and batch == 0:
        raise ConfigError(f"{run_dir} has finished: {done} of epochs={cfg.epochs} done; "
                          f"to train further pass a larger value, e.g. `alexnet train --resume "
                          f"{run_dir} epochs={done + 10}`")
    changes = ", ".join(f"{k}={v}" for k, v in pairs.items())
    print(f"resuming {run_dir} at epoch {done + 1}, batch {batch}"
          + (f", with {changes}" if changes else ""), flush=True)
    return train(cfg, run_dir, resume=True, state=state)


def _check_same_run(run_dir: Path, stored: dict[str, Any]) -> None:
    """last.pt must be this run's: its config agrees with the run's config.yaml (written at the
    start) on every key a resume may not change. A last.pt copied from another run is refused,
    naming whose it is, before its records would mix with this run's metrics.jsonl."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return  # a run folder of an older version, or config.yaml removed: nothing to compare
    try:
        own = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not readable YAML ({err}); it cannot confirm that "
                          f"{run_dir / 'last.pt'} belongs to this run") from None
    if not isinstance(own, dict):
        raise ConfigError(f"{path} is not a run config")

    def flat(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in mapping.items():
            if isinstance(value, dict) and f"{prefix}{key}" in SECTIONS:
                out.update(flat(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    mine, theirs = flat(own), flat(stored)
    skip = set(RESUMABLE) | {"distributed", "started_from", "origin"}
    differ = sorted(k for k in set(mine) | set(theirs)
                    if k not in skip and mine.get(k) != theirs.get(k))
    if differ:
        shown = ", ".join(f"{k}: {theirs.get(k)!r} (this run: {mine.get(k)!r})"
                          for k in differ[:4]) + (f" and {len(differ) - 4} more"
                                                  if len(differ) > 4 else "")
        model = stored.get("model", {}).get("name") if isinstance(stored.get("model"),
                                                                    dict) else None
        raise CheckpointError(
            f"{run_dir / 'last.pt'} is not this run's checkpoint: it holds a run of recipe "
            f"{stored.get('recipe')!r} (model {model!r}) that differs from {path} in {shown}. "
            "Put back the run's own last.pt, or train it in a new folder with --out")


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
