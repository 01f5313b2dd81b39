"""Helpers of benchmarks/gpu_check.sh: the epochs a training part can afford, and the one JSON
plus the summary table made from the parts' outputs.

    python benchmarks/gpu_check_report.py epochs PARTS LIMIT_S MAX_EPOCHS TRAIN_IMAGES VAL_IMAGES
    python benchmarks/gpu_check_report.py summary PARTS OUT_JSON

PARTS holds, per part NAME: NAME.out (stdout), NAME.err (stderr), NAME.status (JSON: rc,
seconds, limit_s, command) and, for training runs, NAME.run (the run folder's path).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Seconds a training run spends outside its steps: start-up, torch.compile of the train and
# eval graphs (a guess for one H100; the log shows the real figure).
TRAIN_OVERHEAD_S = 75.0
EPOCH_OVERHEAD_S = 3.0  # per epoch: last.pt and best.pt (weights + momentum, ~0.5 GB each)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def affordable_epochs(parts: Path, limit_s: float, max_epochs: int, train_images: int,
                      val_images: int) -> tuple[int, float | None]:
    """Epochs that fit in `limit_s` at the optimised step rate `bench train` measured at batch
    128 (the evaluation counted at a third of a training image), and that rate."""
    bench = _json(parts / "train-b128.out")
    rate = (bench or {}).get("optimized", {}).get("images_per_s")
    if not rate:
        return max_epochs, None
    per_epoch = (train_images + val_images / 3) / rate * 1.2 + EPOCH_OVERHEAD_S  # + loader
    fit = int((limit_s - TRAIN_OVERHEAD_S) // per_epoch)
    return max(1, min(max_epochs, fit)), rate


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").replace("\r", "\n")
    except OSError:
        return ""
    return "\n".join([ln for ln in text.splitlines() if ln.strip()][-lines:])


def _training(run_dir: Path) -> dict[str, Any]:
    records = []
    try:
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            records.append(json.loads(line))
    except (OSError, ValueError):
        pass
    train = [r for r in records if r.get("split") == "train"]
    val = [r for r in records if r.get("split") == "val"]
    out: dict[str, Any] = {
        "epochs_done": len(val),
        "val_top1_err": [round(r["top1_err"], 4) for r in val],
        "train_images_per_s": [round(r["images_per_s"], 1) for r in train],
        "train_seconds": [round(r["seconds"], 2) for r in train],
    }
    if val:
        out["final_accuracy"] = round(1 - val[-1]["top1_err"], 4)
        out["best_accuracy"] = round(1 - min(r["top1_err"] for r in val), 4)
    return out


def _part(parts: Path, name: str) -> dict[str, Any]:
    status = _json(parts / f"{name}.status") or {}
    out = parts / f"{name}.out"
    entry: dict[str, Any] = dict(status)
    entry["timed_out"] = status.get("rc") in (124, 137)
    result = _json(out)
    if result is not None:
        entry["result"] = result
    run = parts / f"{name}.run"
    if run.is_file():
        entry["result"] = _training(Path(run.read_text().strip()))
    if "result" not in entry:
        entry["tail"] = _tail(out) or _tail(parts / f"{name}.err")
    if status.get("rc") not in (0, None) and "tail" not in entry:
        entry["error_tail"] = _tail(parts / f"{name}.err")
    if (parts / f"{name}.note").is_file():
        entry["note"] = (parts / f"{name}.note").read_text().strip()
    return entry


def _headline(name: str, entry: dict[str, Any]) -> str:
    r = entry.get("result")
    if entry.get("skipped"):
        return f"skipped: {entry['skipped']}"
    if isinstance(r, dict) and "optimized" in r:
        o, b = r["optimized"], r.get("baseline")
        text = f"optimised {o['images_per_s']:,.0f} img/s ({o['tflops']:.1f} TFLOP/s)"
        if b:
            text += f", plain {b['images_per_s']:,.0f} img/s, {r['speedup']:.2f}x"
        return text
    if isinstance(r, dict) and "rows" in r:
        return ", ".join(f"{row['name']} {row['ms']:.3f} ms ({row['vs_relu']:.2f}x ReLU)"
                         if row.get("ms") is not None else f"{row['name']} n/a"
                         for row in r["rows"])
    if isinstance(r, dict) and "images_per_s" in r:
        return f"{r['images_per_s']:,.0f} img/s ({r['path']}, batch {r['batch_size']})"
    if isinstance(r, dict) and "epochs_done" in r:
        if not r["epochs_done"]:
            return "no epoch finished"
        errs = " ".join(f"{e:.1%}" for e in r["val_top1_err"])
        return (f"{r['epochs_done']} epochs, final acc {r['final_accuracy']:.2%}, val top-1 "
                f"err per epoch: {errs}; {r['train_images_per_s'][-1]:,.0f} img/s")
    if isinstance(r, dict) and "torch" in r:
        return f"{r.get('device')}, torch {r['torch']}, CUDA {r.get('cuda')}"
    return (entry.get("tail") or "").splitlines()[-1][:100] if entry.get("tail") else ""


def summary(parts: Path, out_json: Path) -> str:
    order = _json(parts / "order.json") or []
    result = {"parts": {name: _part(parts, name) for name in order}}
    meta = _json(parts / "meta.json")
    if meta:
        result.update(meta)
    out_json.write_text(json.dumps(result, indent=2))
    lines = [f"{'part':<16} {'rc':>4} {'s':>6}  result"]
    for name, entry in result["parts"].items():
        rc = "skip" if entry.get("skipped") else str(entry.get("rc", "-"))
        if entry.get("timed_out"):
            rc = "TIME"
        secs = f"{entry['seconds']:.0f}" if "seconds" in entry else "-"
        lines.append(f"{name:<16} {rc:>4} {secs:>6}  {_headline(name, entry)}")
        if entry.get("note"):
            lines.append(f"{'':<29}note: {entry['note']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["epochs"] and len(argv) == 6:
        epochs, rate = affordable_epochs(Path(argv[1]), float(argv[2]), int(argv[3]),
                                         int(argv[4]), int(argv[5]))
        print(epochs, f"{rate:.0f}" if rate else "unknown")
        return 0
    if argv[:1] == ["summary"] and len(argv) == 3:
        print(summary(Path(argv[1]), Path(argv[2])))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
