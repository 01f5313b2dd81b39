"""Everything a training run needs, built once: `setup_run` returns a `Training` (data, model,
optimizer, schedule, the wrapped network and its step), restored from a checkpoint when the
run continues. The epoch loop (train/loop.py) only reads and updates it."""

from __future__ import annotations

import copy
import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from alexnet.accel.settings import StepSettings, step_settings
from alexnet.atomic import write_text
from alexnet.data import DataBundle, DataConfig, build_loaders
from alexnet.errors import CheckpointError, ConfigError
from alexnet.models import create_model
from alexnet.recipes import DEFAULT_RECIPE
from alexnet.train.distributed import Dist, per_rank_batch, torchrun_job
from alexnet.train.finetune import freeze, scale_rates, started_from, transfer
from alexnet.train.optim import build_optimizer
from alexnet.train.run_config import RunConfig, dump_config
from alexnet.train.schedule import build_schedule
from alexnet.train.step import StepFn, make_train_step
from alexnet.train.tower_devices import TwoTowerParallel


@dataclass
class Training:
    """One training run. `model` is the plain model (its weights go into checkpoints); `net` is
    what the step calls: `model` in channels_last, wrapped by DDP and torch.compile as the
    device and the config say (accel/settings.py)."""

    cfg: RunConfig  # the resolved config, `distributed` filled in (a copy of the caller's)
    run_dir: Path
    dist: Dist
    data: DataBundle
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Any  # PlateauSchedule | EpochEventSchedule (train/schedule.py)
    accel: StepSettings
    step: StepFn  # (x, y) -> (loss, logits), train/step.py
    steps_per_epoch: int
    start_epoch: int = 0
    start_batch: int = 0  # > 0 when the run stopped inside an epoch
    best_top1_err: float = math.inf


def setup_run(cfg: RunConfig, run_dir: Path, dist: Dist, state: dict[str, Any] | None,
              init: dict[str, Any] | None = None) -> Training:
    """Build the run `cfg` describes; with `state` (the run's last.pt, already loaded), continue
    it exactly. A new run with `init_from` starts from `init` (that checkpoint, loaded). A new
    run's config.yaml is written only once data and model exist, so a start that fails leaves
    no half-made run."""
    cfg = copy.deepcopy(cfg)
    batch = per_rank_batch(cfg.batch_size, dist.world_size)
    cfg.distributed = {
        "world_size": dist.world_size, "global_batch": cfg.batch_size,
        "per_rank_batch": batch, "torchrun_job": torchrun_job(),
        "lr_rule": "lr is set for the global batch, which is fixed; "
                   "more processes means a smaller per-rank batch, not a larger lr"}
    configure_backends(cfg, dist.device)
    torch.manual_seed(cfg.seed + dist.rank)  # dropout; the data draws from its own seeds

    cfg.data.validate()
    fixed = finetune_normalization(cfg, cfg.data, state, init)
    data = build_loaders(cfg.data, batch_size=batch, device=dist.device, seed=cfg.seed,
                         rank=dist.rank, world_size=dist.world_size, normalization=fixed)
    model = create_model(cfg.model.name, num_classes=data.num_classes,
                         in_channels=data.in_channels, **cfg.model.kwargs())
    if cfg.init_from:
        if state is None:
            if init is None:
                raise ConfigError("init_from is set but its checkpoint was not loaded")
            report = transfer(model, init)
            frozen = freeze(model, cfg.finetune.freeze)
            cfg.started_from = started_from(
                cfg.init_from, init, report, frozen,
                "the loaded model's" if fixed is not None else "the data's own (another "
                "channel count than the loaded model's)")
        else:
            freeze(model, cfg.finetune.freeze)
    model = place_model(cfg, model, dist)
    optimizer = build_optimizer(model, cfg.optim)
    if cfg.init_from:
        loaded = cfg.started_from.get("copied", []) + cfg.started_from.get("adapted", [])
        scale_rates(optimizer, model, loaded, float(cfg.finetune.lr_mult))
    schedule = build_schedule(cfg.schedule, cfg.optim.lr)
    start_epoch, start_batch, best = 0, 0, math.inf
    if state is not None:
        start_epoch, start_batch, best = restore(state, model, optimizer, schedule, dist,
                                                 where=run_dir / "last.pt", cfg=cfg, data=data)
    elif dist.is_main:
        if cfg.quick:
            print("QUICK mode (no CUDA): a shortened run of recipe "
                  f"{cfg.recipe!r}; the full run: {full_command(cfg)}")
        text = dump_config(cfg)
        print(f"resolved config -> {run_dir / 'config.yaml'}\n{text}", flush=True)
        write_text(run_dir / "config.yaml", text)

    steps_per_epoch = min(len(data.train), int(cfg.train_batches or len(data.train)))
    accel = step_settings(dist.device, amp=cfg.amp, channels_last=cfg.channels_last,
                          compile=cfg.compile, steps=steps_per_epoch * (cfg.epochs - start_epoch))
    if dist.is_main and dist.device.type == "cpu":
        print(f"CPU training step: {accel.describe()}", flush=True)
    net = wrap_model(model, accel, dist)
    return Training(cfg=cfg, run_dir=run_dir, dist=dist, data=data, model=model, net=net,
               optimizer=optimizer, schedule=schedule, accel=accel,
               step=make_train_step(net, optimizer, amp=accel.amp,
                                    compile_optimizer=accel.compile_optimizer),
               steps_per_epoch=steps_per_epoch, start_epoch=start_epoch,
               start_batch=start_batch, best_top1_err=best)


def configure_backends(cfg: RunConfig, device: torch.device) -> None:
    """Deterministic algorithms when asked; on CUDA TF32 for the fp32 matmuls and convs that
    remain under bf16 autocast (amp=false is the paper's fp32 throughout) and cuDNN autotuning."""
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = bool(cfg.amp)
        torch.backends.cudnn.allow_tf32 = bool(cfg.amp)
        torch.backends.cudnn.benchmark = not cfg.deterministic


def finetune_normalization(cfg: RunConfig, data: DataConfig, state: dict[str, Any] | None,
                           init: dict[str, Any] | None) -> dict[str, torch.Tensor] | None:
    """A fine-tuned model sees its inputs normalised as the loaded model was trained (its
    mean and std, not the new data's), when the channel counts agree; None otherwise (and
    for runs without init_from). A resumed run keeps what it started with."""
    if not cfg.init_from:
        return None
    source = state if state is not None else init
    try:
        saved = source["data"]["normalization"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    channels = data.resolved().channels
    return dict(saved) if saved["mean"].shape[0] == channels else None


def place_model(cfg: RunConfig, model: nn.Module, dist: Dist) -> nn.Module:
    """The model on the run's device (or split over two devices, one tower each, with
    towers=true: §3.2)."""
    if cfg.towers:
        if dist.enabled:
            raise ConfigError("towers=true (model parallel) cannot be combined with several "
                              "processes; use one process with two devices")
        return TwoTowerParallel(model, cfg.tower_devices)
    return model.to(dist.device)


def wrap_model(model: nn.Module, accel: StepSettings, dist: Dist) -> nn.Module:
    """channels_last, then DDP over the processes, then torch.compile, as `accel` says."""
    net = model.to(memory_format=torch.channels_last) if accel.channels_last else model
    if dist.enabled:
        net = DistributedDataParallel(
            net, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)
    return torch.compile(net) if accel.compile else net


def restore(state: dict[str, Any], model: nn.Module, optimizer: torch.optim.Optimizer,
            schedule: Any, dist: Dist, *, where: Path, cfg: RunConfig,
            data: DataBundle) -> tuple[int, int, float]:
    """Load a checkpoint's weights, optimizer, schedule and RNG state into a freshly built
    run; returns (epoch, batch, best validation top-1 error) to continue from."""
    try:
        model.load_state_dict(state["model"]["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], dist)
        return (int(state["epoch"]), int(state["batch"]),
                state["metrics"].get("best_top1_err", math.inf))
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
        found = f"a {state.get('model', {}).get('config', {}).get('name')!r} model"
        raise CheckpointError(
            f"{where} does not fit the run it should continue (model "
            f"{cfg.model.name!r}, {data.num_classes} classes; it holds {found}): "
            f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200]}; start a new "
            "run with another --out") from None


def rng_state(dist: Dist) -> dict[str, Any]:
    """This process's RNG state (dropout), and every rank's in a distributed run (a collective:
    every rank calls it)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if dist.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(dist.device)
    if dist.enabled:
        ranks: list[Any] = [None] * dist.world_size
        torch.distributed.all_gather_object(ranks, state)
        state["ranks"] = ranks
    return state


def set_rng_state(state: dict[str, Any], dist: Dist) -> None:
    ranks = state.get("ranks") or []
    if len(ranks) == dist.world_size:
        state = ranks[dist.rank]
    torch.set_rng_state(state["torch"].cpu())
    if dist.device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), dist.device)
    if dist.enabled and len(ranks) != dist.world_size:  # another world size: a stream per rank
        torch.manual_seed(int(torch.randint(1 << 62, ())) + dist.rank)


def full_command(cfg: RunConfig) -> str:
    """The command for the full (not quick) run of this config: the recipe it came from, its
    data and the overrides it was given (`origin`), with --full. A command that runs as printed
    (`alexnet train --print-config` shows what it resolves to)."""
    origin = cfg.origin or {}
    recipe = str(origin.get("recipe") or cfg.recipe)
    overrides = dict(origin.get("overrides") or {})
    if str(origin.get("quick_overrides", "")).startswith("already"):  # a config.yaml: its own
        recipe, overrides = cfg.recipe, {}                           # recipe's full run
    source = overrides.pop("data.source", cfg.data.source)
    init_from = overrides.pop("init_from", cfg.init_from)
    overrides.pop("quick", None)
    words = ["alexnet", "train"]
    words += [] if recipe == DEFAULT_RECIPE else ["--recipe", recipe]
    words += ["--data", str(source)] if source is not None else []
    words += ["--init-from", str(init_from)] if init_from else []
    words += [f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in overrides.items()]
    return shlex.join([*words, "--full"]) + "   (needs a CUDA GPU to finish in reasonable time)"
