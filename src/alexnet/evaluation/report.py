"""`alexnet report RUN_DIR`: gathers what the report shows (config, learning curves, conv1
kernels, this run's errors next to the paper's) and renders it with `alexnet.figures` as one
self-contained HTML file and a Markdown twin. Works from the run folder alone (config,
metrics.jsonl, checkpoint); when the data is reachable it adds centre and ten-view testing
(§4.1) by `evaluate`, the confusion matrix and the top-5 predictions figure, and says which it
did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from alexnet.data.images import display_image
from alexnet.errors import AlexNetError, CheckpointError
from alexnet.evaluation.checkpoints import (
    UNCROPPED_TEN_VIEWS,
    data_bundle,
    display_names,
    ten_views_unfair,
)
from alexnet.evaluation.evaluate import evaluate
from alexnet.evaluation.metrics import top_classes
from alexnet.figures.confusion import confusion_figure
from alexnet.figures.conv1_kernels import conv1_kernels_figure
from alexnet.figures.curves import learning_curves_figure, lr_changes, read_metrics
from alexnet.figures.predictions import predictions_figure
from alexnet.figures.report_page import Row, markdown_table, write_report
from alexnet.weights.checkpoint import open_checkpoint
from alexnet.weights.torchvision_weights import TORCHVISION

# The paper's §6 and its footnote on ten views: (setting, centre (top-1, top-5), ten views
# (top-1, top-5)), error in %.
PAPER_ILSVRC = [
    ("paper §6, ILSVRC-2010 test, 1 CNN (footnote: without ten views)", (39.0, 18.3),
     (37.5, 17.0)),
    ("paper §6 Table 2, ILSVRC-2012 val, 1 CNN", None, (40.7, 18.2)),
    ("paper §6 Table 2, ILSVRC-2012 val, 5 CNNs averaged", None, (38.1, 16.4)),
    ("released 2012 code log, val, epoch 91 / ten-view at epoch 135", (40.66, 18.21),
     (40.25, 17.99)),
]
# A QUICK-mode run's report evaluates this many images of the split (centre and ten views on
# the same images), so that quickstart.sh's report takes about a minute on 2 CPU cores.
QUICK_LIMIT = 2000
REFERENCES = {
    "owt": [("torchvision alexnet IMAGENET1K_V1, ILSVRC-2012 val", (43.478, 20.934), None)],
    "fashion-mnist": [("Dive into Deep Learning, Fashion-MNIST test, 10 epochs (top-1 only)",
                       (11.5, None), None)],
}


def reference_rows(model: str, num_classes: int, source: str) -> list[Row]:
    """The paper's (or the closest reference's) numbers for this setting; [] when none."""
    if "fashion" in str(source).lower():
        return REFERENCES["fashion-mnist"]
    if num_classes != 1000:
        return []
    if model == "owt":
        return REFERENCES["owt"]
    if model in ("paper", "original", "one-tower", "half"):
        return PAPER_ILSVRC
    return []


@dataclass
class Evaluation:
    """What `report` could evaluate on the data: errors per views, or why it could not."""

    ran: bool
    reason: str = ""
    source: str = ""
    images: int = 0
    limit: int | None = None  # only the split's first `limit` images were evaluated
    note: str = ""  # e.g. why ten-view testing was left out
    errors: dict[str, dict[int, float]] = field(default_factory=dict)  # views -> {1:, 5:}
    confusion: torch.Tensor | None = None
    classes: list[str] = field(default_factory=list)
    sample: tuple[torch.Tensor, torch.Tensor, list[list[str]], list[str]] | None = None


def evaluate_for_report(state: dict[str, Any], data: str | None, *, batch_size: int,
                        device: str | torch.device | None,
                        views: Sequence[str] = ("center", "ten"), progress: bool = True,
                        samples: int = 8, limit: int | None | str = None) -> Evaluation:
    """Centre and ten-view errors of the checkpoint's model on `data` (None: its own source)
    on the split's first `limit` images (None: all; "auto": see build_report), normalised as
    the checkpoint's model was trained; `Evaluation(ran=False, reason=...)` when the data
    cannot be loaded. A checkpoint without data of its own (pretrained) needs `data`."""
    opened = open_checkpoint(state, data, device=device, need_data=True)
    mapping, dev, model = opened.data, opened.device, opened.model
    try:
        bundle = data_bundle(mapping, batch_size=batch_size, device=dev, seed=0,
                             normalization=opened.normalization, checkpoints=[state])
    except CheckpointError:  # data with other classes than the model's: refused, not skipped
        raise
    except (AlexNetError, OSError) as err:
        return Evaluation(False, f"the data {mapping.get('source')!r} could not be loaded "
                                 f"({err})", str(mapping.get("source")))
    names = display_names({"classes": list(bundle.classes)}, bundle.num_classes)
    ev = Evaluation(True, source=str(mapping.get("source")), classes=names)
    if "ten" in views and ten_views_unfair(getattr(bundle, "preprocess", None)):
        views = [v for v in views if v != "ten"]
        ev.note = f"Ten-view testing left out: {UNCROPPED_TEN_VIEWS}."
    if limit == "auto":  # ten views of a QUICK run: a subset keeps the report about a minute
        quick = (state.get("config") or {}).get("quick")
        limit = QUICK_LIMIT if quick and "ten" in views else None
    split_size = len(bundle.eval_loader(views="center").indices)
    ev.limit = limit if limit is not None and limit < split_size else None  # else: all of them
    for v in views:
        r = evaluate(model, bundle, v, limit, progress=progress, desc=f"report: {v} views")
        ev.errors[v] = {1: r.top1_err, 5: r.top5_err}
        ev.images = r.images
        ev.confusion = r.confusion  # of the last views evaluated
    loader = bundle.eval_loader(views="center")
    if hasattr(loader, "indices") and hasattr(loader, "labels"):  # the data part's EvalLoader
        pick = sample_across_classes(loader.labels[loader.indices], samples)
        loader.indices = loader.indices[pick]
    x, y = next(iter(loader))
    x, y = x[:samples], y[:samples].cpu()
    with torch.no_grad():
        p = torch.softmax(model(x.to(dev)).float(), 1).cpu()
    top_p, top_i = top_classes(p, 5)
    norm = getattr(bundle, "normalization", None)
    images = torch.stack([display_image(img, norm) for img in x])
    ev.sample = (images, top_p, [[names[i] for i in row] for row in top_i.tolist()],
                 [names[i] for i in y.tolist()])
    return ev


def sample_across_classes(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Positions of `n` images drawn round-robin over the classes present (the classes in a
    seeded random order, a seeded random image of each), so Fig. 4's panel is not the first
    images of the split, which are often all one class."""
    g = torch.Generator().manual_seed(seed)
    per_class = []
    for c in labels.unique().tolist():
        idx = (labels == c).nonzero().flatten()
        per_class.append(idx[torch.randperm(len(idx), generator=g)].tolist())
    order = torch.randperm(len(per_class), generator=g).tolist()
    picks: list[int] = []
    for turn in range(max((len(p) for p in per_class), default=0)):
        picks += [per_class[k][turn] for k in order if turn < len(per_class[k])]
        if len(picks) >= n:
            break
    return torch.tensor(picks[:n], dtype=torch.int64)


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, *,
                 data: str | None = None, evaluate: bool = True, batch_size: int = 128,
                 device: str | torch.device | None = "auto", progress: bool = True,
                 limit: int | None | str = "auto") -> dict[str, Any]:
    """Write report.html (self-contained) and report.md (+ PNGs) for a run folder, or for a
    checkpoint alone (a file, `torchvision`, a torchvision-layout .pth: no curves; default
    output ./<name>-report).

    `limit`: evaluate only the first `limit` images of the split; "auto" = all of them, except
    QUICK_LIMIT for ten views of a run trained in QUICK mode (10 forward passes per image).

    Returns {"html", "md", "figures": {name: path}, "evaluated": bool, "reason": str,
    "status": what was evaluated, "table": this run's errors and the paper's (Markdown)}.
    """
    word = str(run_dir) == TORCHVISION
    folder = Path(run_dir) if not word and Path(run_dir).is_dir() else None
    if folder is None and not word and not Path(run_dir).is_file():
        raise CheckpointError(f"{run_dir} is not a run folder; pass the folder `alexnet train` "
                              "wrote (config.yaml, metrics.jsonl, last.pt), a checkpoint file "
                              "or `torchvision`")
    # a run folder: its best.pt, else last.pt; pretrained weights without --data: one clear
    # error before anything is written
    opened = open_checkpoint(TORCHVISION if word else Path(run_dir), data, device="cpu",
                             need_data=evaluate)
    ckpt_path, state, model = opened.path, opened.state, opened.model
    name = TORCHVISION if word else folder.name if folder else ckpt_path.stem
    out = Path(out_dir) if out_dir else folder / "report" if folder else Path(f"{name}-report")
    out.mkdir(parents=True, exist_ok=True)
    config_text = ((folder / "config.yaml").read_text()
                   if folder and (folder / "config.yaml").is_file()
                   else yaml.safe_dump(state.get("config", {}), sort_keys=False))
    metrics_path = folder / "metrics.jsonl" if folder else None
    records = read_metrics(metrics_path) if metrics_path and metrics_path.is_file() else []

    figures: dict[str, Path] = {}
    if records:
        figures["learning curves"] = learning_curves_figure(records, out / "curves.png")
    figures["conv1 kernels (Fig. 3)"] = conv1_kernels_figure(
        model.conv1.weight, out / "conv1_kernels.png", towers=model.towers)
    source = data or ((state.get("config") or {}).get("data") or {}).get("source") or "?"
    ev = (evaluate_for_report(state, data, batch_size=batch_size, device=device,
                              progress=progress, limit=limit)
          if evaluate
          else Evaluation(False, "evaluation was switched off (--no-eval)", str(source)))
    if ev.ran and ev.confusion is not None:
        figures["confusion matrix"] = confusion_figure(ev.confusion, ev.classes,
                                                       out / "confusion.png")
    if ev.ran and ev.sample is not None:
        imgs, top_p, top_names, truth = ev.sample
        figures["top-5 predictions (Fig. 4, left)"] = predictions_figure(
            imgs, top_p, top_names, out / "predictions.png", true_names=truth)

    arch = model.config  # the model's own: name, classes, input channels
    rows = _error_rows(records, ev, ckpt_path, state)
    published = _published_rows(state)  # in place of the same numbers from REFERENCES
    refs = published + [r for r in reference_rows(arch["name"], arch["num_classes"], str(source))
                        if all(r[1] != p[1] for p in published)]
    subset = (f"its first {ev.images:,} images; `alexnet report --limit all` for all"
              if ev.limit else f"all {ev.images:,} images")
    status = (f"Evaluated {ckpt_path.name} on {ev.source} ({subset}) with "
              f"{' and '.join(ev.errors)} views. {ev.note}".rstrip() if ev.ran else
              f"Not evaluated on the data: {ev.reason}. The errors below come from the run's "
              "metrics.jsonl (centre views, measured during training); run `alexnet report "
              f"{run_dir} --data SOURCE` to add centre and ten-view testing.")
    origin = (f"{state['pretrained'].get('from', 'pretrained weights')}, file {ckpt_path.name}"
              if state.get("pretrained") else
              f"checkpoint {ckpt_path.name} at epoch {state.get('epoch', '?')}")
    ctx = {"title": f"AlexNet reproduction report: {name}",
           "model": f"{arch['name']} ({arch['num_classes']} classes, {arch['in_channels']} input "
                    f"channels), {origin}",
           "status": status, "config": config_text, "rows": rows, "refs": refs,
           "lr": lr_changes(records), "figures": figures, "setting": f"{arch['name']}, "
           f"{arch['num_classes']} classes, data {source}"}
    html_path, md_path = write_report(ctx, out)
    return {"html": str(html_path), "md": str(md_path),
            "figures": {k: str(v) for k, v in figures.items()}, "evaluated": ev.ran,
            "reason": ev.reason, "status": status, "table": markdown_table(rows + refs)}


def _published_rows(state: dict[str, Any]) -> list[Row]:
    """The published errors of pretrained weights (`pretrained.expected`), centre views."""
    origin = state.get("pretrained") or {}
    e = origin.get("expected")
    if not e:
        return []
    return [(f"{origin.get('from', 'pretrained weights')} as published, ILSVRC-2012 val",
             (round(100 * e["top1_err"], 3), round(100 * e["top5_err"], 3)), None)]


def _error_rows(records: list[dict[str, Any]], ev: Evaluation, ckpt: Path,
                state: dict[str, Any]) -> list[Row]:
    """(setting, centre (top-1, top-5) %, ten views (top-1, top-5) %) for this run."""
    rows: list[Row] = []
    if ev.ran:
        c, t = ev.errors.get("center"), ev.errors.get("ten")
        where = f"first {ev.images:,} images of " if ev.limit else ""
        rows.append((f"this run: {ckpt.name} evaluated on {where}{ev.source}",
                     (100 * c[1], 100 * c[5]) if c else None,
                     (100 * t[1], 100 * t[5]) if t else None))
    val = [r for r in records if r.get("split") == "val" and r.get("top1_err") is not None]
    if val:
        last = val[-1]
        rows.append((f"this run: training log, last epoch ({last['epoch'] + 1})",
                     (100 * last["top1_err"], 100 * last.get("top5_err", math.nan)), None))
        best = min(val, key=lambda r: r["top1_err"])
        rows.append((f"this run: training log, best epoch ({best['epoch'] + 1})",
                     (100 * best["top1_err"], 100 * best.get("top5_err", math.nan)), None))
    elif not ev.ran:
        m = (state.get("metrics") or {}).get("val") or {}
        if "top1_err" in m:
            rows.append((f"this run: {ckpt.name}'s stored validation metrics",
                         (100 * m["top1_err"], 100 * m.get("top5_err", math.nan)), None))
    return rows
