"""The training loop: `train` claims the run folder and builds the run (train/setup.py); the
epoch loop trains, validates (the one `alexnet.evaluation.evaluate`), logs and checkpoints.

Hot path: no host synchronisation per step. The loss is summed on the device and read every
`log_every` steps (progress bar, finiteness check) and at the end of each epoch.
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from alexnet.atomic import append_text
from alexnet.errors import AlexNetError, ConfigError
from alexnet.evaluation.evaluate import EvalResult, evaluate
from alexnet.train.distributed import (
    Dist,
    all_reduce_sum,
    any_process,
    init_distributed,
    shutdown_distributed,
)
from alexnet.train.doctor import RunDoctor
from alexnet.train.preemption import CheckpointClock, StopRequest, stopped_message
from alexnet.train.run_config import RunConfig, validate_config
from alexnet.train.run_folder import RunFolder
from alexnet.train.schedule import current_lr
from alexnet.train.setup import Training, full_command, rng_state, setup_run
from alexnet.weights.checkpoint import load_checkpoint, save_checkpoint


class TrainingDiverged(AlexNetError):
    """The loss or the weights became NaN or infinite."""


def diverged(what: str, where: str) -> TrainingDiverged:
    """The one message for a run whose numbers stopped being finite."""
    return TrainingDiverged(
        f"{what} at {where}; the run stopped and the last good checkpoint (last.pt) is intact. "
        "Lower the learning rate (e.g. optim.lr=0.005) and resume or start over")


def train(cfg: RunConfig | Mapping[str, Any] | None, run_dir: str | Path, *, resume: bool = False,
          state: dict[str, Any] | None = None, force: bool = False,
          init: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train as `cfg` (a resolved config) says, writing config.yaml, metrics.jsonl, last.pt and
    best.pt to `run_dir`. With `resume`, continue from `run_dir/last.pt` exactly (`state`: that
    checkpoint when the caller has already loaded it), with `cfg` (None = its own config).
    A new run with `init_from` starts from `init` (that checkpoint, loaded; None = load it).

    Returns a summary: epochs done, final and best validation errors, whether it was
    interrupted, the run folder. Every value is checked first (`validate_config`); the folder
    belongs to this run (`RunFolder`: refused when it holds another, locked, `force` moves the
    old run aside).
    """
    run_dir = Path(run_dir)
    if resume and state is None:
        state = load_checkpoint(run_dir / "last.pt")
    if isinstance(cfg, Mapping):  # a config.yaml's or a checkpoint's mapping
        cfg = RunConfig.from_dict(cfg)
    if cfg is not None:
        validate_config(cfg)
        if cfg.init_from and not resume and init is None:
            init = load_checkpoint(cfg.init_from)
    elif state is None:
        raise ConfigError("train() needs a config unless it resumes a run")
    else:
        cfg = RunConfig.from_dict(state["config"])
    dist = init_distributed(cfg.device, cfg.dist_timeout)
    deterministic = torch.are_deterministic_algorithms_enabled()
    folder = RunFolder(run_dir, resume=resume, force=force) if dist.is_main else None
    failed = True
    try:
        refused: AlexNetError | None = None
        if folder is not None:
            try:
                folder.claim()
            except AlexNetError as err:
                refused = err
        if any_process(refused is not None, dist):  # every rank stops, not only rank 0
            raise refused or ConfigError(f"rank 0 could not claim the run folder {run_dir}")
        run = setup_run(cfg, run_dir, dist, state if resume else None, init)
        summary = run_epochs(run)
        failed = False
        return summary
    finally:
        if folder is not None:
            folder.release(failed)
        torch.use_deterministic_algorithms(deterministic)
        shutdown_distributed()


def run_epochs(run: Training) -> dict[str, Any]:
    """Epochs `run.start_epoch`.. of the run: train, validate on centre views, step the
    schedule (§5), checkpoint, log; stop early on a signal or when the schedule is done."""
    cfg, dist = run.cfg, run.dist
    say = print if dist.is_main else _quiet
    metrics = MetricsLog(run.run_dir, dist.is_main)
    doctor = RunDoctor(run.data.num_classes, float(cfg.optim.lr),
                       model=dict(run.model.config), fine_tuned=bool(cfg.init_from))
    stop = StopRequest()
    clock = CheckpointClock(cfg.checkpoint_every, cfg.checkpoint_minutes, dist)
    start = time.perf_counter()
    summary: dict[str, Any] = {"run_dir": str(run.run_dir), "interrupted": False,
                               "epochs_done": run.start_epoch,
                               "best_top1_err": run.best_top1_err, "val": None}
    with stop.installed():
        for epoch in range(run.start_epoch, cfg.epochs):
            run.schedule.start_epoch(epoch, run.optimizer, run.data.train)
            first = run.start_batch if epoch == run.start_epoch else 0
            result = train_epoch(run, epoch, first, stop, doctor, clock)
            if result.stopped_at is not None:
                save_run(run, epoch, result.stopped_at, None, "last.pt")
                summary["interrupted"] = True
                say(stopped_message(run.run_dir, epoch, result.stopped_at), flush=True)
                break
            val = validate(run)
            lr = current_lr(run.optimizer)
            say_progress = tqdm.write if dist.is_main else _quiet
            say_progress(f"epoch {epoch + 1}/{cfg.epochs}: train loss {result.loss:.4f} "
                         f"(top-1 error {result.top1_err:.2%}), val top-1 error "
                         f"{val.top1_err:.2%}, top-5 error {val.top5_err:.2%}, lr {lr:g}")
            advice = doctor.epoch(epoch, result.loss, val.top1_err, val_images=val.images,
                                  steps=(epoch + 1) * run.steps_per_epoch)
            if advice:
                say_progress(advice)
            done = run.schedule.end_epoch(epoch, val.top1_err, run.optimizer,
                                          at_chance=doctor.never_left_chance)
            improved = val.top1_err < run.best_top1_err
            run.best_top1_err = min(run.best_top1_err, val.top1_err)
            save_run(run, epoch + 1, 0, val, "last.pt")
            if improved:
                save_run(run, epoch + 1, 0, val, "best.pt")
            # logged once last.pt holds the epoch: a kill before this re-runs it, logged once
            metrics.write({"epoch": epoch, "split": "train", "loss": result.loss,
                           "top1_err": result.top1_err, "lr": lr,
                           "images_per_s": result.images_per_s, "seconds": result.seconds})
            metrics.write({"epoch": epoch, "split": "val", "loss": val.loss,
                           "top1_err": val.top1_err, "top5_err": val.top5_err, "lr": lr})
            summary.update(epochs_done=epoch + 1, best_top1_err=run.best_top1_err,
                           val=val_record(val))
            if done:
                say(f"stopped after {epoch + 1} epochs: the run never left chance, so the "
                    "plateau schedule's lr reductions would not help; see the warnings above "
                    "for what to try" if getattr(run.schedule, "stop_reason", "") == "chance"
                    else "validation error stopped improving after the last lr reduction: "
                    f"done after {epoch + 1} epochs (§5)")
                break
    metrics.close()
    summary["seconds"] = time.perf_counter() - start
    if not summary["interrupted"] and summary["val"] is not None:
        val = summary["val"]
        minutes, seconds = divmod(round(summary["seconds"]), 60)
        say(f"finished: validation/test accuracy {1 - val['top1_err']:.2%} (top-5 "
            f"{1 - val['top5_err']:.2%}) after {summary['epochs_done']} epochs in {minutes} min "
            f"{seconds} s of training and testing; checkpoints in {run.run_dir}")
        if cfg.quick:
            say(f"this was the QUICK mode; the full run: {full_command(cfg)}")
    return summary


def validate(run: Training) -> EvalResult:
    """Mean loss and top-1/top-5 error on the validation split's centre views, summed over all
    processes (each evaluates its share)."""
    return evaluate(run.net, run.data, "center", amp=run.accel.amp,
                    channels_last=run.accel.channels_last, keep_outputs=False,
                    reduce=functools.partial(all_reduce_sum, dist=run.dist),
                    progress=run.dist.is_main, desc="validation", leave=False)


def val_record(val: EvalResult) -> dict[str, float]:
    """What checkpoints and the summary keep of a validation pass."""
    return {"loss": val.loss, "top1_err": val.top1_err, "top5_err": val.top5_err,
            "images": float(val.images)}


def save_run(run: Training, epoch: int, batch: int, val: EvalResult | None, name: str) -> None:
    """Checkpoint the run (docs/ARCHITECTURE.md's format) as run_dir/`name`: the next step is
    batch `batch` of epoch `epoch`. Refused while a weight is not finite."""
    rng = rng_state(run.dist)  # a collective in distributed runs: every rank calls it
    if not run.dist.is_main:
        return
    if not _all_finite(run.model):
        raise diverged("the weights are not finite", f"epoch {epoch}")
    save_checkpoint({
        "model": {"config": dict(run.model.config), "state_dict": run.model.state_dict()},
        "classes": list(run.data.classes),
        "data": {"normalization": dict(run.data.normalization),
                 "preprocess": dict(run.data.preprocess)},
        "config": run.cfg.to_dict(), "epoch": epoch, "batch": batch,
        "optimizer": run.optimizer.state_dict(), "scheduler": run.schedule.state_dict(),
        "rng": rng,
        "metrics": {"best_top1_err": run.best_top1_err,
                    "val": val_record(val) if val is not None else {}},
    }, run.run_dir / name)


@dataclass
class EpochResult:
    loss: float  # mean training loss over the epoch's steps (with dropout and augmentation)
    top1_err: float  # on the training batches, as trained
    images_per_s: float
    seconds: float
    stopped_at: int | None  # the next batch, when a signal stopped the epoch early


def train_epoch(run: Training, epoch: int, first: int, stop: StopRequest,
                doctor: RunDoctor | None = None,
                clock: CheckpointClock | None = None) -> EpochResult:
    """Steps `first`..`run.steps_per_epoch`-1 of `epoch`; a host sync every `log_every` steps;
    last.pt inside the epoch when `clock` says (train/preemption.py)."""
    cfg, dist, steps = run.cfg, run.dist, run.steps_per_epoch
    run.net.train()
    device = next(run.model.parameters()).device
    loss_sum = torch.zeros((), device=device)  # summed on the device: no per-step sync
    correct = torch.zeros((), device=device, dtype=torch.int64)  # top-1 hits, training batches
    window_loss = torch.zeros((), device=device)
    window, seen, images = 0, 0, 0
    log_every = max(1, int(cfg.log_every))
    start = tick = time.perf_counter()
    bar = tqdm(total=steps, initial=first, desc=f"epoch {epoch + 1}/{cfg.epochs}",
               unit="batch", disable=not dist.is_main, dynamic_ncols=True, file=sys.stdout)
    stopped_at = None
    for step, (x, y) in enumerate(islice(_batches(run.data.train, epoch, first),
                                         max(steps - first, 0)), start=first):
        if run.accel.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss, logits = run.step(x, y)
        loss_sum += loss.float()
        correct += (logits.argmax(1) == y).sum()
        window_loss += loss.float()
        window, seen, images = window + 1, seen + 1, images + len(y)
        bar.update(1)  # every step; tqdm redraws at most every 0.1 s, without a host sync
        last = step + 1 == steps
        if window == log_every or last:
            value = window_loss.item() / window  # the host sync, once per window
            if not math.isfinite(value):
                raise diverged(f"the training loss became {value}",
                               f"epoch {epoch + 1}, step {step + 1}")
            advice = doctor.window(epoch, step + 1, value) if doctor is not None else None
            if advice and dist.is_main:
                tqdm.write(advice)
            now = time.perf_counter()
            rate = window * len(y) * dist.world_size / max(now - tick, 1e-9)
            bar.set_postfix(loss=f"{value:.4f}", img_s=f"{rate:,.0f}")
            window_loss.zero_()
            window, tick = 0, now
        if _stop_now(stop, dist, window) and not last:
            stopped_at = step + 1
            break
        if clock is not None and not last and clock.due(step + 1, window):
            save_run(run, epoch, step + 1, None, "last.pt")
    bar.close()
    mean_loss, top1_err = math.nan, math.nan
    if seen:
        mean_loss = loss_sum.item() / seen
        top1_err = 1 - correct.item() / max(images, 1)
        if not math.isfinite(mean_loss):
            raise diverged(f"the training loss became {mean_loss}", f"epoch {epoch + 1}")
    seconds = time.perf_counter() - start
    return EpochResult(loss=mean_loss, top1_err=top1_err,
                       images_per_s=images * dist.world_size / max(seconds, 1e-9),
                       seconds=seconds, stopped_at=stopped_at)


def _batches(loader: Any, epoch: int, first: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches of `epoch` from batch `first` (the data part's `iterate`), or a
    plain iterable's."""
    return loader.iterate(epoch, first) if hasattr(loader, "iterate") else iter(loader)


def _stop_now(stop: StopRequest, dist: Dist, window: int) -> bool:
    """A signal asked to stop: alone, at once; distributed, all ranks agree at a window's end."""
    if not dist.enabled:
        return stop.requested
    return window == 0 and any_process(stop.requested, dist)


def _all_finite(model: nn.Module) -> bool:
    """One host sync: are all weights finite (checked before any checkpoint is written)?"""
    flags = [p.detach().isfinite().all() for p in model.parameters()]
    return bool(torch.stack(flags).all().item())


def _quiet(*args: Any, **kwargs: Any) -> None:
    """What ranks other than 0 print."""


class MetricsLog:
    """metrics.jsonl (one JSON object per line) and TensorBoard when it is installed."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled, self.path, self.tb = enabled, run_dir / "metrics.jsonl", None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional dependency

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except ImportError:
                self.tb = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        append_text(self.path, json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and key != "epoch":
                    self.tb.add_scalar(f"{record['split']}/{key}", value, record["epoch"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
