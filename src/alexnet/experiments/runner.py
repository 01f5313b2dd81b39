"""`alexnet experiment run|report|list`: plan an experiment, train (or continue, or skip) its
arms one after the other with the normal training code, analyse them and write the results.

An experiment folder (`--out`, default runs/experiments/<name>[-quick]):
    plan.json        what was asked (name, data, seeds, QUICK or full, KEY=VALUE, --from)
    arms/<arm>/      one ordinary run folder per arm (config.yaml, metrics.jsonl, last.pt, ...)
    results.json     every number, each arm's overrides and status, the verdict
    results.md       the claim, the paper's number beside ours, the verdict, the runs
    figure.png
Running the same command again continues the arms that did not finish and skips the others.
"""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from alexnet.atomic import write_text
from alexnet.errors import ConfigError, DataError
from alexnet.experiments.arms import (
    ARMS,
    Arm,
    arm_config,
    arm_folder,
    arm_overrides,
    arm_state,
    copy_arm,
    final_val,
    read_records,
    reusable_arm,
    run_arm,
)
from alexnet.experiments.catalog import EXPERIMENTS, get_experiment
from alexnet.experiments.results import FIGURE, fmt_spread, fmt_value, write_results
from alexnet.experiments.spec import ArmRun, Experiment, Outcome, Plan
from alexnet.schema import parse_overrides
from alexnet.train.run_config import validate_config
from alexnet.train.training_run import run_training

PLAN = "plan.json"
# Set by the command's own options, not as KEY=VALUE.
BY_OPTION = {"data.source": "--data", "quick": "--full (or nothing: QUICK without CUDA)"}
PAPER_DATA = {"relu-vs-tanh": "CIFAR-10", "lrn-cifar": "CIFAR-10", "views": "ILSVRC",
              "ensemble": "ILSVRC-2012", "towers": "ILSVRC", "lrn": "ILSVRC",
              "overlap": "ILSVRC", "dropout": "ILSVRC", "depth": "ILSVRC",
              "kernels": "ILSVRC", "retrieval": "ILSVRC-2010"}


def default_out(name: str, quick: bool) -> Path:
    """runs/experiments/<name>[-quick]: fixed, so that the same command continues it."""
    return Path("runs") / "experiments" / f"{name}{'-quick' if quick else ''}"


def make_plan(name: str, *, data: str | None = None, seeds: int | None = None,
              full: bool = False, overrides: list[str] | None = None,
              source: str | None = None) -> Plan:
    """The plan of `alexnet experiment run NAME ...`, checked: KEY=VALUE keys the experiment
    sets per arm (or the options set) are refused, --from only where the experiment takes
    runs, and a dataset is needed where the experiment has no default."""
    exp = get_experiment(name)
    extra = parse_overrides(overrides or [])
    refused = [f"{k}: set by {BY_OPTION[k]}" for k in extra if k in BY_OPTION]
    refused += [f"{k}: {name} sets it per arm" for k in extra if k in exp.varies]
    if refused:
        raise ConfigError(f"experiment {name} cannot take these KEY=VALUE: {'; '.join(refused)}")
    quick = not full and not torch.cuda.is_available()
    if source is not None and not exp.takes_runs:
        raise ConfigError(f"experiment {name} trains its own runs; --from is for "
                          f"{', '.join(e.name for e in EXPERIMENTS.values() if e.takes_runs)}")
    if source is not None and seeds is not None:
        raise ConfigError("--seeds does not apply with --from: the runs given are evaluated")
    n = 0 if source is not None else exp.seeds[0 if quick else 1] if seeds is None else seeds
    if source is None and (not isinstance(n, int) or n < 1):
        raise ConfigError(f"--seeds {seeds}: expected a whole number >= 1")
    data = data or (None if source else exp.default_data)
    if data is None and source is None:
        raise ConfigError(f"experiment {name} needs --data: {exp.data_hint}")
    return Plan(name=name, data=data, seeds=n, quick=quick, extra=extra, source=source)


def run_experiment(name: str, *, data: str | None = None, seeds: int | None = None,
                   out: str | None = None, full: bool = False,
                   overrides: list[str] | None = None, source: str | None = None,
                   reuse: list[str] | None = None) -> dict[str, Any] | None:
    """`alexnet experiment run`: train the arms not finished yet (one at a time), then analyse
    them and write results.json, results.md and figure.png. Returns the results, or None when
    a signal stopped an arm (the same command continues it). `reuse`: other experiment folders
    whose finished arms of the same name and resolved config are copied instead of trained
    (the ablations all train the paper net with the same seeds)."""
    start = time.perf_counter()
    plan = make_plan(name, data=data, seeds=seeds, full=full, overrides=overrides,
                     source=source)
    exp = get_experiment(name)
    folder = Path(out) if out else default_out(name, plan.quick)
    sources = [Path(r) for r in reuse or []]
    for r in sources:
        if not (r / PLAN).is_file():
            raise ConfigError(f"--reuse {r}: not an experiment folder (no {PLAN})")
    claim_plan(folder, plan)
    arms = exp.arms(plan)
    pairs = {arm.name: arm_overrides(arm, plan.extra, plan.data) for arm in arms}
    states = {arm.name: arm_state(arm_folder(folder, arm)) for arm in arms}
    for arm in arms:  # every new arm's config is checked before the first one trains
        if states[arm.name] in ("new", "started"):
            validate_config(arm_config(arm, pairs[arm.name]))
    mode = "QUICK" if plan.quick else "full"
    print(f"experiment {name} ({exp.section}), {mode}: {len(arms)} run(s) in "
          f"{folder / ARMS}" + (f", evaluating {source}" if source else ""), flush=True)
    if exp.power is not None and not source:
        print(exp.power.statement(plan.seeds, exp.floor), flush=True)
    statuses: dict[str, str] = {}
    if not train_arms(exp, plan, folder, arms, pairs, statuses, sources, data,
                      extend=False):
        return None
    if exp.followup is not None and not source:
        more = exp.followup(plan, [ArmRun(a.name, arm_folder(folder, a), a.tags)
                                   for a in arms])
        print(f"experiment {name}: {len(more)} more run(s) chosen from the first "
              f"{len(arms)}", flush=True)
        pairs.update({a.name: arm_overrides(a, plan.extra, plan.data) for a in more})
        if not train_arms(exp, plan, folder, more, pairs, statuses, sources, data,
                          extend=True):
            return None
        arms = arms + [a for a in more if a.name not in {b.name for b in arms}]
    runs = ([ArmRun(a.name, arm_folder(folder, a), a.tags) for a in arms] if not source
            else runs_from(source))
    results = finish(exp, plan, folder, runs, arms, pairs, statuses)
    results["seconds"] = time.perf_counter() - start
    write_results(folder, results)
    print(summary(results, folder), flush=True)
    return results


def train_arms(exp: Experiment, plan: Plan, folder: Path, arms: list[Arm],
               pairs: dict[str, dict[str, Any]], statuses: dict[str, str], sources: list[Path],
               data: str | None, *, extend: bool) -> bool:
    """Train (continue, skip or copy from `sources`) each arm in turn, printing one line per
    arm; with `extend`, an arm the experiment wants longer (`more_epochs`) continues until
    it does not. False when a signal stopped an arm (the same command continues it)."""
    for i, arm in enumerate(arms, start=1):
        where = arm_folder(folder, arm)
        state = arm_state(where)
        if state in ("new", "started"):
            validate_config(arm_config(arm, pairs[arm.name]))
        found = (reusable_arm(arm, pairs[arm.name], sources)
                 if sources and state == "new" else None)
        if found is not None:
            copy_arm(found, where)
            statuses[arm.name] = "reused"
            print(f"[{i}/{len(arms)}] {arm.name}: the same run finished in {found}, copied",
                  flush=True)
        else:
            print(f"[{i}/{len(arms)}] {arm.name}: " + ("finished before, skipped"
                  if state == "finished" else f"training -> {where}"), flush=True)
            try:
                statuses[arm.name] = run_arm(arm, where, pairs[arm.name])
            except DataError as err:
                if data is None and exp.default_data:
                    raise DataError(f"{err}\nor run the experiment on data this machine has, "
                                    f"e.g. --data fashion-mnist or --data DIR "
                                    f"({exp.data_hint})") from None
                raise
        while (statuses.get(arm.name) != "interrupted" and extend
               and exp.more_epochs is not None):
            epochs = exp.more_epochs(plan, ArmRun(arm.name, where, arm.tags))
            if epochs is None:
                break
            print(f"[{i}/{len(arms)}] {arm.name}: continues to {epochs} epochs", flush=True)
            summary = run_training(resume=str(where), overrides={"epochs": epochs})
            statuses[arm.name] = "interrupted" if summary["interrupted"] else "extended"
        if statuses.get(arm.name) == "interrupted":
            print(f"experiment {plan.name} stopped in {arm.name}; continue it with: "
                  f"{command(plan, folder)}", flush=True)
            return False
    return True


def report_experiment(folder: str | Path) -> dict[str, Any]:
    """`alexnet experiment report DIR`: analyse the finished arms of DIR again and rewrite its
    results (nothing is trained)."""
    folder = Path(folder)
    plan = read_plan(folder)
    exp = get_experiment(plan.name)
    arms = planned_arms(exp, plan, folder)
    unfinished = [a.name for a in arms if arm_state(arm_folder(folder, a)) != "finished"]
    if unfinished:
        raise ConfigError(f"{folder}: {len(unfinished)} run(s) have not finished "
                          f"({', '.join(unfinished[:4])}); continue them with: "
                          f"{command(plan, folder)}")
    pairs = {arm.name: arm_overrides(arm, plan.extra, plan.data) for arm in arms}
    runs = ([ArmRun(a.name, arm_folder(folder, a), a.tags) for a in arms] if not plan.source
            else runs_from(plan.source))
    results = finish(exp, plan, folder, runs, arms, pairs, {})
    write_results(folder, results)
    print(summary(results, folder), flush=True)
    return results


def planned_arms(exp: Experiment, plan: Plan, folder: Path) -> list[Arm]:
    """The arms of an experiment folder: `arms`, and the followup's once those finished."""
    arms = exp.arms(plan)
    if exp.followup is None or plan.source is not None or any(
            arm_state(arm_folder(folder, a)) != "finished" for a in arms):
        return arms
    more = exp.followup(plan, [ArmRun(a.name, arm_folder(folder, a), a.tags) for a in arms])
    return arms + [a for a in more if a.name not in {b.name for b in arms}]


def finish(exp: Experiment, plan: Plan, folder: Path, runs: list[ArmRun], arms: list[Arm],
           pairs: dict[str, dict[str, Any]], statuses: dict[str, str]) -> dict[str, Any]:
    """Analyse the runs, draw the figure; the results as results.json holds them."""
    print(f"analysing {len(runs)} run(s) of {exp.name} ({exp.section})", flush=True)
    outcome: Outcome = exp.analyse(plan, runs)
    figure = outcome.draw(folder / FIGURE)
    by_name = {a.name: a for a in arms}
    arm_rows = []
    for r in runs:
        arm = by_name.get(r.name)
        arm_rows.append({
            "name": r.name, "folder": str(r.folder), "recipe": arm.recipe if arm else
            run_config(r.folder).get("recipe"), "overrides": pairs.get(r.name),
            "tags": r.tags, "status": statuses.get(r.name, "finished"),
            "val_top1_err": final_val(read_records(r.folder))["top1_err"],
            "train_seconds": sum(rec.get("seconds", 0.0) for rec in read_records(r.folder)
                                 if rec.get("split") == "train")})
    source = plan.data or run_config(runs[0].folder).get("data", {}).get("source")
    return {
        "experiment": exp.name, "section": exp.section, "claim": exp.claim,
        "paper": exp.paper, "mode": "QUICK" if plan.quick else "full",
        "data": source, "data_description": describe_data(source, PAPER_DATA[exp.name]),
        "seeds": plan.seeds if not plan.source else len(runs),
        "command": command(plan, folder), "plan": plan.asdict(),
        "rows": outcome.rows, "effect": outcome.effect, "verdict": outcome.verdict.asdict(),
        "floor": {"value": exp.floor, "why": exp.floor_why},
        "power": None if exp.power is None or plan.source else {
            "statement": exp.power.statement(plan.seeds, exp.floor),
            "measured": exp.power.measured, "full": exp.power.full,
            **(p.asdict() if (p := exp.power.assess(plan.seeds, exp.floor)) else {})},
        "figure": figure.name, "notes": outcome.notes, "details": outcome.details,
        "arms": arm_rows, "seconds": None}


def claim_plan(folder: Path, plan: Plan) -> None:
    """Write plan.json into a new experiment folder; in an existing one, the plan must be the
    same (the same command continues it)."""
    path = folder / PLAN
    if path.is_file():
        old = read_plan(folder)
        if old != plan:
            diff = [f"{k}={v!r} (this command: {plan.asdict()[k]!r})"
                    for k, v in old.asdict().items() if plan.asdict()[k] != v]
            raise ConfigError(f"{folder} holds an experiment run with {', '.join(diff)}; run "
                              f"the same command to continue it ({command(old, folder)}), or "
                              "choose another --out")
        return
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} already holds files but no {PLAN}: it is not an "
                          "experiment folder; choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(plan.asdict(), indent=2) + "\n")


def read_plan(folder: Path) -> Plan:
    path = Path(folder) / PLAN
    if not path.is_file():
        raise ConfigError(f"{folder} is not an experiment folder (no {PLAN}); make one with "
                          "`alexnet experiment run NAME --out DIR`")
    try:
        return Plan(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as err:
        raise ConfigError(f"{path} is not an experiment plan: {err}") from None


def runs_from(source: str) -> list[ArmRun]:
    """--from: a run folder (its last.pt), or an experiment folder (its finished arms)."""
    path = Path(source)
    if (path / PLAN).is_file():
        arms_dir = path / ARMS
        folders = sorted((p for p in arms_dir.iterdir() if arm_state(p) == "finished"),
                         key=_natural) if arms_dir.is_dir() else []
    elif (path / "last.pt").is_file():
        folders = [path]
    else:
        raise DataError(f"--from {source}: neither a run folder (with last.pt) nor an "
                        f"experiment folder (with {PLAN} and {ARMS}/)")
    if not folders:
        raise DataError(f"--from {source}: no finished run in it")
    return [ArmRun(p.name, p, {}) for p in folders]


def _natural(path: Path) -> list[Any]:
    """seed2 before seed10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def run_config(folder: Path) -> dict[str, Any]:
    """A run folder's config.yaml (the resolved config)."""
    try:
        return yaml.safe_load((folder / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def command(plan: Plan, folder: Path) -> str:
    """The command that made (and continues) this experiment folder."""
    parts = ["alexnet", "experiment", "run", plan.name]
    if plan.data is not None:
        parts += ["--data", plan.data]
    if plan.source is not None:
        parts += ["--from", plan.source]
    parts += ["--seeds", str(plan.seeds)] if plan.source is None else []
    parts += ["--out", str(folder)]
    parts += [] if plan.quick else ["--full"]
    parts += [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in plan.extra.items()]
    return shlex.join(parts)


def describe_data(source: Any, paper_data: str) -> str:
    """Which data the numbers come from, and whether it is the paper's."""
    if source == "cifar10" and paper_data == "CIFAR-10":
        return "CIFAR-10 (the paper's data)"
    what = str(source)
    meta = Path(str(source)) / "meta.json"
    if meta.is_file():
        try:
            m = json.loads(meta.read_text())
            what += (f" (prepared from {Path(str(m.get('source'))).name}, {m.get('size')} px, "
                     f"{len(m.get('classes', []))} classes, {m.get('counts', {}).get('train')} "
                     "training images)")
            if paper_data.startswith("ILSVRC") and len(m.get("classes", [])) == 1000:
                return f"{what}: 1000 ILSVRC classes, as the paper"
        except (OSError, json.JSONDecodeError):
            pass
    return (f"{what}: not the paper's {paper_data}, so only the direction of the effect is "
            "compared, not the numbers")


def summary(results: dict[str, Any], folder: Path) -> str:
    """What `run` and `report` print: the rows, the verdict, where the files are."""
    lines = [f"\n{results['experiment']} ({results['section']}), {results['mode']}, data "
             f"{results['data']}:"]
    for row in results["rows"]:
        paper = fmt_value(row["paper"], row["unit"]) if row["paper"] is not None else "—"
        lines.append(f"  {row['quantity']}: {fmt_spread(row['ours'], row['unit'])}"
                     f"   paper: {paper}")
    v = results["verdict"]
    lines.append(f"verdict: {v['word']} ({v['reason']})")
    lines.append(f"results: {folder / 'results.md'}, {folder / 'results.json'}, "
                 f"{folder / results['figure']}")
    return "\n".join(lines)


def experiment_table() -> list[dict[str, Any]]:
    """`alexnet experiment list`: one row per experiment."""
    return [{"name": e.name, "section": e.section, "claim": e.claim, "paper": e.paper,
             "default_data": e.default_data or f"none, --data needed: {e.data_hint}",
             "seeds": {"quick": e.seeds[0], "full": e.seeds[1]},
             "cost": {"quick": e.cost[0], "full": e.cost[1]},
             "power": e.power.statement(e.seeds[0], e.floor) if e.power else None}
            for e in EXPERIMENTS.values()]
