"""`alexnet experiment run all`: every experiment in the paper's order, one after the other,
each in ROOT/<name> (so the same command continues where it stopped and skips finished arms),
then one table: experiment, section, the paper's number, ours, the verdict, the time.

Later experiments copy the finished arms of earlier ones that are the same run (`--reuse`:
the ablations of §3.2-§3.4, §4.2 and §7 all train the paper net with the same seeds).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from alexnet.atomic import write_text
from alexnet.errors import ConfigError, DataError
from alexnet.experiments.catalog import EXPERIMENTS
from alexnet.experiments.results import fmt_spread
from alexnet.experiments.runner import PLAN, run_experiment

SUMMARY_JSON, SUMMARY_MD = "summary.json", "summary.md"
CIFAR = "cifar10"  # default_data of the CIFAR-10 experiments (§3.1, §3.3)


def default_root(quick: bool) -> Path:
    return Path("runs") / "experiments" / f"all{'-quick' if quick else ''}"


def run_all(*, data: str | None = None, cifar_data: str | None = None,
            seeds: int | None = None, out: str | None = None, full: bool = False,
            overrides: list[str] | None = None, only: list[str] | None = None
            ) -> dict[str, Any]:
    """Run every experiment (or those in `only`) into OUT/<name> and write OUT/summary.json
    and summary.md. `data`: the data of the experiments without a default (ILSVRC-style
    image folders); `cifar_data`: the CIFAR-10 experiments' (default `cifar10`). An experiment
    that cannot run (no data, a missing dataset) gets a row saying why; the others go on."""
    names = only if only else list(EXPERIMENTS)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ConfigError(f"unknown experiment(s) {', '.join(unknown)}; valid: "
                          f"{', '.join(EXPERIMENTS)}")
    import torch

    quick = not full and not torch.cuda.is_available()
    root = Path(out) if out else default_root(quick)
    root.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for k, name in enumerate(names, start=1):
        exp = EXPERIMENTS[name]
        given = cifar_data if exp.default_data == CIFAR else data
        print(f"\n=== [{k}/{len(names)}] {name} ({exp.section}) ===", flush=True)
        row: dict[str, Any] = {"experiment": name, "section": exp.section,
                               "paper": exp.paper, "ours": "—", "verdict": "not run",
                               "seconds": 0.0, "folder": str(root / name)}
        if given is None and exp.default_data is None:
            row["reason"] = f"needs --data ({exp.data_hint})"
            print(f"{name}: not run, {row['reason']}", flush=True)
            rows.append(row)
            continue
        reuse = [str(p.parent) for p in sorted(root.glob(f"*/{PLAN}"))
                 if p.parent.name != name]
        t0 = time.perf_counter()
        try:
            results = run_experiment(name, data=given, seeds=seeds, out=str(root / name),
                                     full=full, overrides=overrides, reuse=reuse)
        except (ConfigError, DataError) as err:
            row["reason"] = str(err).splitlines()[0]
            print(f"{name}: not run, {row['reason']}", flush=True)
            rows.append(row)
            continue
        row["seconds"] = time.perf_counter() - t0
        if results is None:  # a signal stopped an arm: the same command continues it
            row["verdict"] = "stopped"
            rows.append(row)
            break
        e = results["effect"]
        row.update(ours=f"{fmt_spread(e['values'], e['unit'])}", verdict=results["verdict"]
                   ["word"], reason=results["verdict"]["reason"],
                   statuses={a["name"]: a["status"] for a in results["arms"]})
        rows.append(row)
    summary = {"mode": "QUICK" if quick else "full", "root": str(root), "rows": rows,
               "seconds": time.perf_counter() - start}
    write_text(root / SUMMARY_JSON, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    write_text(root / SUMMARY_MD, summary_markdown(summary))
    print("\n" + summary_markdown(summary), flush=True)
    return summary


def summary_markdown(summary: dict[str, Any]) -> str:
    """The table of `run all` (README's results table takes it as it is)."""
    lines = [f"| experiment | section | paper | ours ({summary['mode']}: effect, mean ± std "
             "over seeds) | verdict | time |", "|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        minutes, secs = divmod(round(r["seconds"]), 60)
        verdict = r["verdict"] + (f" ({r['reason']})" if r["verdict"] == "not run" else "")
        lines.append(f"| `{r['experiment']}` | {r['section']} | {r['paper']} | {r['ours']} | "
                     f"{verdict} | {minutes} min {secs} s |")
    return "\n".join(lines) + "\n"
