"""An experiment's results: results.json (every number, the arms and their overrides),
results.md (the claim, the paper's number beside ours, the verdict) and the figure."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from alexnet.atomic import write_text
from alexnet.experiments.verdict import mean_std

RESULTS_JSON, RESULTS_MD, FIGURE = "results.json", "results.md", "figure.png"


def finite_or_none(value: Any) -> Any:
    """JSON has no inf or NaN: they become null (recursively)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def fmt_value(value: float | None, unit: str) -> str:
    """One number in its unit: % and points from fractions, epochs, × ratios, logs."""
    if value is None or not math.isfinite(value):
        return "not reached" if unit == "epochs" else "n/a"
    return {"%": f"{100 * value:.2f}%", "points": f"{100 * value:+.2f} points",
            "epochs": f"{value:.2f}", "x": f"{value:.2f}×", "log": f"{value:+.3f}"
            }.get(unit, f"{value:.4g}")


def fmt_spread(values: list[float | None], unit: str) -> str:
    """mean ± std over the finite values (`n/a` for none), with how many were not."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    missing = len(values) - len(finite)
    if not finite:
        return f"{fmt_value(None, unit)} ({len(values)} seeds)"
    m, s = mean_std(finite)
    scale = 100 if unit in ("%", "points") else 1
    spread = f" ± {scale * s:.2f}" if s is not None else ""
    text = f"{fmt_value(m, unit)}{spread} (n={len(finite)})"
    if missing:
        text += f"; {missing} {fmt_value(None, unit)}"
    return text


def write_results(out: Path, payload: dict[str, Any]) -> dict[str, Path]:
    """results.json and results.md in `out` (atomic writes); returns their paths."""
    payload = finite_or_none(payload)
    paths = {"json": out / RESULTS_JSON, "md": out / RESULTS_MD}
    write_text(paths["json"], json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
    write_text(paths["md"], markdown(payload))
    return paths


def markdown(p: dict[str, Any]) -> str:
    """results.md: what was claimed, what we measured beside it, the verdict, the arms."""
    v = p["verdict"]
    lines = [f"# {p['experiment']} ({p['section']}) — {p['mode']}", "",
             f"**Claim** ({p['section']}): {p['claim']}.  ",
             f"**Paper:** {p['paper']}.  ",
             f"**Data:** {p['data_description']}.  ",
             f"**Seeds:** {p['seeds']}. **Command:** `{p['command']}`  ",
             f"**Time:** {_minutes(sum(a.get('train_seconds') or 0 for a in p['arms']))} of "
             "training in all runs (their metrics.jsonl)"
             + (f"; this invocation {_minutes(p['seconds'])} wall"
                if p.get("seconds") is not None else ""), "",
             "| quantity | ours (mean ± std over seeds) | paper |", "|---|---|---|"]
    for row in p["rows"]:
        note = f" ({row['note']})" if row.get("note") else ""
        paper = fmt_value(row["paper"], row["unit"]) if row["paper"] is not None else "—"
        lines.append(f"| {row['quantity']} | {fmt_spread(row['ours'], row['unit'])}{note} | "
                     f"{paper} |")
    e = p["effect"]
    values = ", ".join(fmt_value(x, e["unit"]) for x in e["values"]) or "none"
    paper_effect = e.get("paper_text") or fmt_value(e["paper"], e["unit"])
    lines += ["", f"**Effect** ({e['name']}): {values}; paper: {paper_effect}.",
              "", f"**Verdict: {v['word']}** — {v['reason']}.", "",
              f"_Rule:_ {v['rule']}.", ""]
    if p.get("power"):
        lines += [f"_Before it ran_, {p['power']['statement']}.", ""]
    if p.get("notes"):
        lines += [f"- {n}" for n in p["notes"]] + [""]
    if p.get("figure"):
        lines += [f"![{p['experiment']}]({p['figure']})", ""]
    arms = p["arms"]
    common = _common_overrides([a.get("overrides") or {} for a in arms])
    lines += ["## Runs", "", "Each is an ordinary run folder: `alexnet eval FOLDER`, "
              "`alexnet report FOLDER`, `alexnet train --resume FOLDER`."
              + (f" Every run: {_pairs(common)} (all overrides of each run: results.json)."
                 if common else ""), "",
              "| run | recipe | its own overrides | status | final val top-1 |",
              "|---|---|---|---|---|"]
    for a in arms:
        own = {k: v for k, v in (a.get("overrides") or {}).items() if k not in common}
        lines.append(f"| `{a['folder']}` | {a.get('recipe') or '—'} | {_pairs(own) or '—'} | "
                     f"{a.get('status', '—')} | {fmt_value(a.get('val_top1_err'), '%')} |")
    return "\n".join(lines) + "\n"


def _minutes(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s"


def _common_overrides(overrides: list[dict[str, Any]]) -> dict[str, Any]:
    """The KEY=VALUE pairs every run has (with two runs or more)."""
    if len(overrides) < 2:
        return {}
    return {k: v for k, v in overrides[0].items() if all(o.get(k, object()) == v
                                                         for o in overrides[1:])}


def _pairs(overrides: dict[str, Any]) -> str:
    return " ".join(f"`{k}={v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}`"
                    for k, v in overrides.items())
