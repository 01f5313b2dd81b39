"""The training loop: one epoch of steps, per-epoch validation, metrics, checkpoints, resume.

Hot path: no host synchronisation per step. The loss is summed on the device and read every
`log_every` steps (progress bar, finiteness check) and at the end of each epoch.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from alexnet.atomic import append_text, write_text
from alexnet.checkpoint import load_checkpoint, save_checkpoint
from alexnet.errors import AlexNetError, CheckpointError, ConfigError
from alexnet.train.accel import autocast, step_settings
from alexnet.train.config import dump_config, set_dotted, validate_config
from alexnet.train.distributed import (
    Dist,
    all_reduce_sum,
    any_process,
    init_distributed,
    per_rank_batch,
    shutdown_distributed,
)
from alexnet.train.doctor import RunDoctor
from alexnet.train.optim import build_optimizer
from alexnet.train.run_folder import RunFolder
from alexnet.train.schedule import build_schedule, current_lr


class TrainingDiverged(AlexNetError):
    """The loss became NaN or infinite."""


DataBuilder = Callable[..., Any]  # (cfg, *, batch_size, device, seed, rank, world_size) -> bundle


def default_data_builder(cfg: dict[str, Any], *, batch_size: int, device: torch.device,
                         seed: int, rank: int, world_size: int) -> Any:
    """`alexnet.data.build_loaders` on the config's `data` mapping."""
    try:
        from alexnet.data import DataConfig, build_loaders
    except ImportError as err:
        raise AlexNetError(f"the data part (alexnet.data) is not available: {err}; "
                           "reinstall the package (pip install -e .)") from err
    return build_loaders(DataConfig.from_dict(dict(cfg["data"])), batch_size=batch_size,
                         device=device, seed=seed, rank=rank, world_size=world_size)


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the next step boundary."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.requested = True

    @contextmanager
    def installed(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "_orig_mod", model)  # torch.compile
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "_orig_mod", model)


def _all_finite(model: nn.Module) -> bool:
    """One host sync: are all weights finite (checked before any checkpoint is written)?"""
    flags = [p.detach().isfinite().all() for p in model.parameters()]
    return bool(torch.stack(flags).all().item())


def _rng_state(d: Dist) -> dict[str, Any]:
    """This process's RNG state (dropout), and every rank's in a distributed run."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if d.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(d.device)
    if d.enabled:
        import torch.distributed as dist

        ranks: list[Any] = [None] * d.world_size
        dist.all_gather_object(ranks, state)
        state["ranks"] = ranks
    return state


def _set_rng_state(state: dict[str, Any], d: Dist) -> None:
    ranks = state.get("ranks") or []
    if len(ranks) == d.world_size:
        state = ranks[d.rank]
    torch.set_rng_state(state["torch"].cpu())
    if d.device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), d.device)


def evaluate(model: nn.Module, loader: Any, d: Dist, amp: bool,
             channels_last: bool) -> dict[str, float]:
    """Mean loss and top-1/top-5 error on `loader` (centre views), summed over all processes."""
    model.eval()
    totals = torch.zeros(4, device=d.device, dtype=torch.float64)  # loss, top1 ok, top5 ok, n
    with torch.no_grad(), _autocast(d.device, amp):
        for x, y in loader:
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = model(x).float()  # (B, classes)
            k = min(5, logits.shape[1])
            top = logits.topk(k, dim=1).indices  # (B, k)
            hit = top == y[:, None]
            totals += torch.stack([F.cross_entropy(logits, y, reduction="sum").double(),
                                   hit[:, 0].sum().double(), hit.any(1).sum().double(),
                                   torch.tensor(float(len(y)), device=d.device,
                                                dtype=torch.float64)])
    loss, ok1, ok5, n = all_reduce_sum(totals, d).tolist()
    n = max(n, 1.0)
    return {"loss": loss / n, "top1_err": 1 - ok1 / n, "top5_err": 1 - ok5 / n, "images": n}


def _autocast(device: torch.device, amp: bool):
    return autocast(device, amp)  # bf16 on CUDA, and on CPUs with native bf16 (train/accel.py)


class _Metrics:
    """metrics.jsonl (one JSON object per line) and TensorBoard when it is installed."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.enabled, self.path, self.tb = enabled, run_dir / "metrics.jsonl", None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except ImportError:  # tensorboard is optional
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


def train(cfg: dict[str, Any] | None, run_dir: str | Path, *, resume: bool = False,
          build_data: DataBuilder | None = None, force: bool = False) -> dict[str, Any]:
    """Train as `cfg` (a resolved config) says, writing config.yaml, metrics.jsonl, last.pt and
    best.pt to `run_dir`. With `resume`, continue from `run_dir/last.pt` exactly, with `cfg`
    (None = the checkpoint's own config).

    Returns a summary: epochs done, final and best validation errors, whether it was
    interrupted, the run folder. Every value is checked first (`validate_config`); the folder
    belongs to this run (`RunFolder`: refused when it holds another, locked, `force` moves the
    old run aside).
    """
    if cfg is not None:
        validate_config(cfg)
    device = cfg["device"] if cfg is not None else resume_config(run_dir)["device"]
    d = init_distributed(device)
    deterministic = torch.are_deterministic_algorithms_enabled()
    folder = RunFolder(run_dir, resume=resume, force=force) if d.is_main else None
    failed = True
    try:
        refused: AlexNetError | None = None
        if folder is not None:
            try:
                folder.claim()
            except AlexNetError as err:
                refused = err
        if any_process(refused is not None, d):  # every rank stops, not only rank 0
            raise refused or ConfigError(f"rank 0 could not claim the run folder {run_dir}")
        summary = _train(cfg, Path(run_dir), d, resume, build_data or default_data_builder)
        failed = False
        return summary
    finally:
        if folder is not None:
            folder.release(failed)
        torch.use_deterministic_algorithms(deterministic)
        shutdown_distributed()


def _train(cfg: dict[str, Any] | None, run_dir: Path, d: Dist, resume: bool,
           build_data: DataBuilder) -> dict[str, Any]:
    state = load_checkpoint(run_dir / "last.pt", map_location=d.device) if resume else None
    if cfg is None:
        if state is None:
            raise ConfigError("train() needs a config unless it resumes a run")
        cfg = state["config"]
    batch = per_rank_batch(cfg["batch_size"], d.world_size)
    set_dotted(cfg, "distributed", {
        "world_size": d.world_size, "global_batch": cfg["batch_size"], "per_rank_batch": batch,
        "lr_rule": "lr is set for the global batch, which is fixed; "
                   "more processes means a smaller per-rank batch, not a larger lr"})
    cuda = d.device.type == "cuda"
    if cfg["deterministic"]:
        torch.use_deterministic_algorithms(True)
    if cuda:
        # TF32 for the remaining fp32 matmuls and convs; amp=false is the paper's fp32 throughout
        torch.backends.cuda.matmul.allow_tf32 = bool(cfg["amp"])
        torch.backends.cudnn.allow_tf32 = bool(cfg["amp"])
        torch.backends.cudnn.benchmark = not cfg["deterministic"]
    torch.manual_seed(cfg["seed"] + d.rank)  # dropout; the data draws from its own seeds

    data = build_data(cfg, batch_size=batch, device=d.device, seed=cfg["seed"], rank=d.rank,
                      world_size=d.world_size)
    model = _build_model(cfg, data, d)
    optimizer = build_optimizer(model, cfg["optim"])
    schedule = build_schedule(cfg["schedule"], cfg["optim"]["lr"])
    start_epoch, start_batch, best = 0, 0, math.inf
    if state is not None:
        try:
            model.load_state_dict(state["model"]["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["scheduler"])
            start_epoch, start_batch = int(state["epoch"]), int(state["batch"])
            best = state["metrics"].get("best_top1_err", math.inf)
            _set_rng_state(state["rng"], d)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            found = f"a {state.get('model', {}).get('config', {}).get('name')!r} model"
            raise CheckpointError(
                f"{run_dir / 'last.pt'} does not fit the run it should continue (model "
                f"{cfg['model'].get('name')!r}, {data.num_classes} classes; it holds {found}): "
                f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}; start a new "
                "run with another --out") from None
    if state is None and d.is_main:  # only now that data and model exist: no half-made runs
        if cfg.get("quick"):
            print("QUICK mode (no CUDA): a shortened run of recipe "
                  f"{cfg['recipe']!r}; the full run: {full_command(cfg)}")
        text = dump_config(cfg)
        print(f"resolved config -> {run_dir / 'config.yaml'}\n{text}", flush=True)
        write_text(run_dir / "config.yaml", text)

    per_epoch = min(len(data.train), int(cfg["train_batches"] or len(data.train)))
    accel = step_settings(d.device, amp=cfg["amp"], channels_last=cfg["channels_last"],
                          compile=cfg["compile"], steps=per_epoch * (cfg["epochs"] - start_epoch))
    if d.is_main and d.device.type == "cpu":
        print(f"CPU training step: {accel.describe()}", flush=True)
    amp, channels_last = accel.amp, accel.channels_last
    raw = model
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[d.device.index] if cuda else None)
    if accel.compile:
        model = torch.compile(model)
    if accel.compile_optimizer:  # CPU: §5's update as one fused loop over the weights
        optimizer.step = torch.compile(optimizer.step)

    metrics = _Metrics(run_dir, d.is_main)
    doctor = RunDoctor(data.num_classes, float(cfg["optim"]["lr"]))
    stop = StopRequest()
    steps_per_epoch = len(data.train)
    if cfg["train_batches"]:
        steps_per_epoch = min(steps_per_epoch, int(cfg["train_batches"]))
    summary: dict[str, Any] = {"run_dir": str(run_dir), "interrupted": False, "epochs_done":
                               start_epoch, "best_top1_err": best, "val": None}

    def checkpoint(epoch: int, batch_index: int, val: dict | None, path: str) -> None:
        rng = _rng_state(d)  # a collective in distributed runs: every rank calls it
        if not d.is_main:
            return
        if not _all_finite(raw):
            raise TrainingDiverged(f"the weights are not finite at epoch {epoch}; nothing saved, "
                                   f"{run_dir / 'last.pt'} keeps the last good state")
        save_checkpoint({
            "model": {"config": dict(raw.config), "state_dict": raw.state_dict()},
            "classes": list(data.classes),
            "data": {"normalization": dict(data.normalization),
                     "preprocess": dict(data.preprocess)},
            "config": cfg, "epoch": epoch, "batch": batch_index,
            "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
            "rng": rng,
            "metrics": {"best_top1_err": best, "val": val or {}},
        }, run_dir / path)

    with stop.installed():
        for epoch in range(start_epoch, cfg["epochs"]):
            schedule.start_epoch(epoch, optimizer, data.train)
            first = start_batch if epoch == start_epoch else 0
            result = _train_epoch(model, optimizer, data.train, epoch, first, steps_per_epoch,
                                  cfg, d, amp, channels_last, stop, doctor)
            if result["stopped_at"] is not None:
                checkpoint(epoch, result["stopped_at"], None, "last.pt")
                summary["interrupted"] = True
                if d.is_main:
                    print(f"\nstopped at epoch {epoch}, batch {result['stopped_at']}; "
                          f"checkpoint {run_dir / 'last.pt'}.\nresume with: "
                          f"alexnet train --resume {run_dir}", flush=True)
                break
            val = evaluate(model, data.val, d, amp, channels_last)
            lr = current_lr(optimizer)
            if d.is_main:
                tqdm.write(f"epoch {epoch + 1}/{cfg['epochs']}: train loss {result['loss']:.4f}"
                           f" (top-1 error {result['top1_err']:.2%}), val top-1 error "
                           f"{val['top1_err']:.2%}, top-5 error {val['top5_err']:.2%}, lr {lr:g}")
            advice = doctor.epoch(epoch, result["loss"], val["top1_err"])
            if advice and d.is_main:
                tqdm.write(advice)
            done = schedule.end_epoch(epoch, val["top1_err"], optimizer,
                                      at_chance=doctor.never_left_chance)
            improved = val["top1_err"] < best
            best = min(best, val["top1_err"])
            checkpoint(epoch + 1, 0, val, "last.pt")
            if improved:
                checkpoint(epoch + 1, 0, val, "best.pt")
            # logged once last.pt holds the epoch: a kill before this re-runs it, logged once
            metrics.write({"epoch": epoch, "split": "train", "loss": result["loss"],
                           "top1_err": result["top1_err"], "lr": lr,
                           "images_per_s": result["images_per_s"], "seconds": result["seconds"]})
            metrics.write({"epoch": epoch, "split": "val", "loss": val["loss"],
                           "top1_err": val["top1_err"], "top5_err": val["top5_err"], "lr": lr})
            summary.update(epochs_done=epoch + 1, best_top1_err=best, val=val)
            if done:
                if d.is_main and getattr(schedule, "stop_reason", "") == "chance":
                    print(f"stopped after {epoch + 1} epochs: the run never left chance, so the "
                          "plateau schedule's lr reductions would not help; see the warnings "
                          "above for what to try")
                elif d.is_main:
                    print(f"validation error stopped improving after the last lr reduction: "
                          f"done after {epoch + 1} epochs (§5)")
                break
    metrics.close()
    if d.is_main and not summary["interrupted"] and summary["val"] is not None:
        val = summary["val"]
        print(f"finished: validation/test accuracy {1 - val['top1_err']:.2%} (top-5 "
              f"{1 - val['top5_err']:.2%}) after {summary['epochs_done']} epochs; "
              f"checkpoints in {run_dir}")
        if cfg.get("quick"):
            print(f"this was the QUICK mode; the full run: {full_command(cfg)}")
    return summary


def full_command(cfg: dict[str, Any]) -> str:
    """The command for the full (not quick) run of this recipe."""
    recipe = "" if cfg["recipe"] == "fashion-mnist" else f" --recipe {cfg['recipe']}"
    return f"alexnet train{recipe} --full   (needs a CUDA GPU to finish in reasonable time)"


def _build_model(cfg: dict[str, Any], data: Any, d: Dist) -> nn.Module:
    from alexnet.models import create_model

    options = {k: v for k, v in cfg["model"].items() if k != "name"}
    model = create_model(cfg["model"]["name"], num_classes=data.num_classes,
                         in_channels=data.in_channels, **options)
    if cfg["towers"]:
        from alexnet.train.towers import TwoTowerParallel

        if d.enabled:
            raise ConfigError("towers=true (model parallel) cannot be combined with several "
                              "processes; use one process with two devices")
        return TwoTowerParallel(model, cfg["tower_devices"])
    return model.to(d.device)


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: Any, epoch: int,
                 first: int, steps: int, cfg: dict[str, Any], d: Dist, amp: bool,
                 channels_last: bool, stop: StopRequest,
                 doctor: RunDoctor | None = None) -> dict[str, Any]:
    """Steps `first`..`steps`-1 of `epoch`. Syncs with the host every `log_every` steps only."""
    model.train()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)  # summed on the device: no per-step sync
    correct = torch.zeros((), device=device, dtype=torch.int64)  # top-1 hits on training batches
    window_loss = torch.zeros((), device=device)
    window, seen, images = 0, 0, 0
    log_every = max(1, int(cfg["log_every"]))
    start = tick = time.perf_counter()
    bar = tqdm(total=steps, initial=first, desc=f"epoch {epoch + 1}/{cfg['epochs']}",
               unit="batch", disable=not d.is_main, dynamic_ncols=True, file=sys.stdout)
    batches = loader.iterate(epoch, first) if hasattr(loader, "iterate") else iter(loader)
    stopped_at, mean_loss, rate = None, math.nan, 0.0
    step = first
    for step, (x, y) in enumerate(islice(batches, max(steps - first, 0)), start=first):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(d.device, amp):
            logits = model(x)  # (B, classes)
            loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach().float()
        correct += (logits.detach().argmax(1) == y).sum()
        window_loss += loss.detach().float()
        window, seen, images = window + 1, seen + 1, images + len(y)
        last = step + 1 == steps
        if window == log_every or last:
            value = window_loss.item() / window  # the host sync, once per window
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"the training loss became {value} at epoch {epoch + 1}, step {step + 1}; "
                    "the run stopped and the last good checkpoint (last.pt) is intact. Lower "
                    "the learning rate (e.g. optim.lr=0.005) and resume or start over")
            advice = doctor.window(epoch, step + 1, value) if doctor is not None else None
            if advice and d.is_main:
                tqdm.write(advice)
            now = time.perf_counter()
            rate = window * len(y) * d.world_size / max(now - tick, 1e-9)
            bar.set_postfix(loss=f"{value:.4f}", img_s=f"{rate:,.0f}")
            bar.update(window)
            window_loss.zero_()
            window, tick = 0, now
        if (stop.requested if not d.enabled else (window == 0 and any_process(stop.requested, d))) \
                and not last:
            bar.update(window)
            stopped_at = step + 1
            break
    bar.close()
    top1_err = math.nan
    if seen:
        mean_loss = loss_sum.item() / seen
        top1_err = 1 - correct.item() / max(images, 1)
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(f"the training loss became {mean_loss} in epoch {epoch + 1}; "
                                   "the run stopped and last.pt is intact. Lower the learning "
                                   "rate (e.g. optim.lr=0.005) and resume or start over")
    seconds = time.perf_counter() - start
    return {"loss": mean_loss, "top1_err": top1_err,  # with dropout and augmentation, as trained
            "images_per_s": images * d.world_size / max(seconds, 1e-9),
            "seconds": seconds, "stopped_at": stopped_at}


def resume_config(run_dir: str | Path) -> dict[str, Any]:
    """The resolved config stored in `run_dir`'s last checkpoint."""
    return load_checkpoint(Path(run_dir) / "last.pt")["config"]
