"""An experiment's arms: ordinary run folders made by the normal training code.

An `Arm` is a recipe + KEY=VALUE overrides (the keys of `alexnet train`, `alexnet recipes
--keys`) and a folder name. `run_arm` trains it with `alexnet.train.loop.train`, continues it
(`alexnet train --resume` semantics: last.pt with epoch < epochs) or skips it when it has
finished, so `alexnet eval`, `report` and `train --resume` work on every arm folder.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alexnet.errors import ConfigError, DataError
from alexnet.recipes import load_recipe
from alexnet.train.loop import train
from alexnet.train.run_config import RunConfig, defaults, resolve_config
from alexnet.train.training_run import run_training
from alexnet.weights.checkpoint import load_checkpoint

ARMS = "arms"  # the arms' run folders: <experiment folder>/arms/<arm name>


@dataclass(frozen=True)
class Arm:
    """One training run of an experiment."""

    name: str  # its folder under arms/, e.g. "relu-lr0.01-seed0"
    recipe: str  # a shipped recipe (`alexnet recipes`)
    overrides: dict[str, Any]  # dotted KEY: value, as `alexnet train KEY=VALUE`
    tags: dict[str, Any] = field(default_factory=dict)  # what the analysis groups by


def arm_folder(out: Path, arm: Arm) -> Path:
    return out / ARMS / arm.name


def arm_overrides(arm: Arm, extra: dict[str, Any], data: str | None) -> dict[str, Any]:
    """The arm's overrides with `--data` (data.source) and the command line's KEY=VALUE on
    top: what `alexnet train --recipe RECIPE` would be given for it."""
    pairs = copy.deepcopy(arm.overrides)
    if data is not None:
        pairs["data.source"] = data
    pairs.update(copy.deepcopy(extra))
    return pairs


def arm_config(arm: Arm, pairs: dict[str, Any]) -> RunConfig:
    """The arm's resolved run config (`resolve_config(recipe, overrides)`)."""
    cfg = resolve_config(load_recipe(arm.recipe), pairs, source=arm.recipe)
    if not cfg.data.source:
        raise ConfigError(f"arm {arm.name}: recipe {arm.recipe!r} needs a dataset; pass --data "
                          "PATH (an ILSVRC-2012 tree, an image folder or a folder made by "
                          "`alexnet prepare`)")
    return cfg


def arm_state(folder: Path) -> str:
    """`new` (nothing trained), `started` (a config but no checkpoint yet), `unfinished`
    (last.pt with epoch < epochs, or stopped inside an epoch) or `finished` (all its epochs,
    or ended by its schedule: §5's plateau rule after its last reduction, or never left
    chance)."""
    last = folder / "last.pt"
    if not last.is_file():
        return "started" if (folder / "config.yaml").is_file() else "new"
    state = load_checkpoint(last)
    epochs = int((state.get("config") or {}).get("epochs", 0))
    between_epochs = int(state.get("batch", 0)) == 0
    done = int(state.get("epoch", 0)) >= epochs
    ended = bool((state.get("scheduler") or {}).get("stop_reason"))
    return "finished" if between_epochs and (done or ended) else "unfinished"


def run_arm(arm: Arm, folder: Path, pairs: dict[str, Any]) -> str:
    """Train, continue or skip the arm in `folder`; returns what happened: `skipped`
    (finished before), `resumed`, `trained` or `interrupted` (a signal stopped it; its last.pt
    holds where)."""
    status = arm_state(folder)
    if status == "finished":
        return "skipped"
    if status == "unfinished":
        summary = run_training(resume=str(folder))
        return "interrupted" if summary["interrupted"] else "resumed"
    cfg = arm_config(arm, pairs)
    # `started`: killed before its first checkpoint; nothing to continue, the old folder moves
    # aside (`--force`) and the arm starts over.
    summary = train(cfg, folder, force=status == "started")
    return "interrupted" if summary["interrupted"] else "trained"


def read_records(folder: Path) -> list[dict[str, Any]]:
    """The arm's metrics.jsonl records (one per epoch and split)."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        raise DataError(f"{path} does not exist: the arm has not finished an epoch; continue "
                        "the experiment with the same command")
    records = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a kill
    return records


def final_val(records: list[dict[str, Any]]) -> dict[str, float]:
    """The last validation record: the final net's centre-view errors (`evaluate`)."""
    vals = [r for r in records if r.get("split") == "val"]
    if not vals:
        return {"top1_err": math.nan, "top5_err": math.nan, "loss": math.nan}
    last = max(vals, key=lambda r: r["epoch"])
    return {k: float(last[k]) for k in ("top1_err", "top5_err", "loss")}


def train_curve(records: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """[(epochs completed, top-1 error on that epoch's training batches as trained)]."""
    rows = sorted((r for r in records if r.get("split") == "train"), key=lambda r: r["epoch"])
    return [(int(r["epoch"]) + 1, float(r["top1_err"])) for r in rows]


def same_config(ours: Any, theirs: Any, default: Any = None) -> bool:
    """Whether a run's config.yaml (`theirs`) holds every key of the resolved config `ours`
    with the same value (lists and tuples alike; keys the run added, such as `distributed`,
    do not count). A key missing from `theirs` counts as the same when ours holds its
    `default` value: the run was written before the key existed, and ran as its default."""
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            return False
        default = default if isinstance(default, dict) else {}
        return all(same_config(v, theirs[k], default.get(k)) if k in theirs
                   else k in default and same_config(v, default[k])
                   for k, v in ours.items())
    if isinstance(ours, (list, tuple)):
        return (isinstance(theirs, (list, tuple)) and len(ours) == len(theirs)
                and all(same_config(a, b) for a, b in zip(ours, theirs, strict=True)))
    return ours == theirs


def reusable_arm(arm: Arm, pairs: dict[str, Any], sources: list[Path]) -> Path | None:
    """A finished arm of the same name in one of the experiment folders `sources` (`--reuse`)
    whose resolved config is this arm's: the same recipe, overrides and seed, so the same run
    (CPU training is deterministic; a GPU's may differ in the last bits)."""
    import yaml

    ours = arm_config(arm, pairs).to_dict()
    ours.pop("origin")  # where the config came from; the run is the same
    for source in sources:
        folder = source / ARMS / arm.name
        if arm_state(folder) != "finished":
            continue
        try:
            theirs = yaml.safe_load((folder / "config.yaml").read_text())
        except (OSError, yaml.YAMLError):
            continue
        if same_config(ours, theirs, defaults()):
            return folder
    return None


def copy_arm(found: Path, folder: Path) -> None:
    """Copy a finished arm's run folder into this experiment (a copy, not a link: the other
    experiment may be deleted or continued)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(folder.name + ".copying")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(found, partial)
    partial.rename(folder)
