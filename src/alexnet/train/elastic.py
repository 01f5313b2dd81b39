"""Training under torchrun's elastic agent (`torchrun --nnodes=MIN:MAX --rdzv-backend=c10d
... -m alexnet train ... --out RUN`; docs/DISTRIBUTED.md).

- Workers that torchrun (re)starts continue the run in RUN when it holds a checkpoint of this
  run (the same resolved config, but for the keys a resume may change): no flag in the job
  script. An empty RUN starts fresh; RUN holding another run is refused (or with --force moved
  aside, once per torchrun job: restarts of that job resume what it wrote).
- Rank 0 decides from the files and tells the others (`plan_start`, one broadcast); every rank
  reads last.pt itself, so RUN must be on storage all nodes share (checked: the ranks must read
  the same epoch and batch).
- A collective that fails (a process hung past `dist_timeout`, a peer gone) becomes one error
  naming the silent ranks: each process bumps a counter in torchrun's store every second
  (`Liveness`), and the counters that stopped moving name the ones that hung or vanished.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import re
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch.distributed as tdist
import yaml

from alexnet.errors import AlexNetError, CheckpointError, ConfigError
from alexnet.train.distributed import (
    FRESH_STORE,
    Dist,
    init_distributed,
    shutdown_distributed,
    torchrun_job,
)
from alexnet.train.loop import train
from alexnet.train.run_config import RunConfig
from alexnet.weights.checkpoint import load_checkpoint

RESTART_ENV = "TORCHELASTIC_RESTART_COUNT"  # how often this agent restarted its workers
NOT_COMPARED = ("distributed", "started_from", "origin")  # written at start, not chosen
OWN_FILES = ("config.yaml", "metrics.jsonl", "tb")  # what a run writes before its first last.pt


class PeerFailure(AlexNetError):
    """Another process of a distributed run hung or vanished."""


def restart_count() -> int:
    """How often torchrun restarted this worker group (0 on its first start)."""
    return int(os.environ.get(RESTART_ENV, "0") or 0)


# ---------------------------------------------------------------- what a (re)started job does


@dataclass(frozen=True)
class Plan:
    """Rank 0's reading of RUN, sent to every rank."""

    action: str  # fresh | resume | done | refuse
    force: bool = False  # fresh: move RUN's old run aside (RunFolder)
    clear: bool = False  # fresh: remove what this run wrote before its first checkpoint
    epoch: int = 0  # resume/done: last.pt's next epoch and batch
    batch: int = 0
    world_size: int = 1  # resume: the world size that wrote last.pt
    message: str = ""  # refuse: why


def comparable(cfg: dict[str, Any], resumable: tuple[str, ...] | dict[str, Any]
               ) -> dict[str, Any]:
    """The dotted keys of `cfg` that make a run this run: all but the `resumable` ones (which a
    resume may change) and those written at start (NOT_COMPARED)."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk(yaml.safe_load(yaml.safe_dump(cfg)), "")  # as config.yaml holds it: lists, not tuples
    return {k: v for k, v in flat.items()
            if k.split(".")[0] not in NOT_COMPARED and k not in resumable}


def differences(here: dict[str, Any], there: dict[str, Any]) -> list[str]:
    """`key: X here, Y in RUN` for each key where two `comparable` configs differ."""
    keys = sorted(set(here) | set(there))
    return [f"{k}={here.get(k)!r} here, {there.get(k)!r} there" for k in keys
            if here.get(k) != there.get(k)]


def plan_start(cfg: RunConfig, run_dir: Path, *, force: bool, job: str | None,
               resumable: tuple[str, ...] | dict[str, Any]) -> Plan:
    """What workers (re)started by torchrun do with RUN (rank 0 reads it):

    - last.pt of this run (same `comparable` config): resume it; with --force only when this
      torchrun job wrote it (a restart), else start over with the old run moved aside;
    - config.yaml of this run without last.pt (stopped before its first checkpoint): start
      over in place;
    - nothing: start fresh; anything else: RunFolder's rules (refused without --force).
    """
    here = comparable(cfg.to_dict(), resumable)
    last = run_dir / "last.pt"
    if last.is_file():
        try:
            state = load_checkpoint(last)
        except CheckpointError as err:
            return Plan("refuse", message=f"{err}; move it aside, or start over with --force")
        stored = state.get("config") if isinstance(state.get("config"), dict) else {}
        there = comparable(stored, resumable)
        written_by = (stored.get("distributed") or {}).get("torchrun_job")
        if force and written_by != job:
            return Plan("fresh", force=True)
        diff = differences(here, there)
        if diff:
            more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
            return Plan("refuse", message=(
                f"{run_dir} holds another run's checkpoint (last.pt): {'; '.join(diff[:3])}"
                f"{more}; run the same command to continue it, --force to start over (the "
                "old run is moved aside), or choose another --out"))
        epoch, batch = int(state.get("epoch", 0)), int(state.get("batch", 0))
        world = int((stored.get("distributed") or {}).get("world_size", 1))
        done = epoch >= cfg.epochs and batch == 0
        return Plan("done" if done else "resume", epoch=epoch, batch=batch, world_size=world)
    config = run_dir / "config.yaml"
    if config.is_file():
        try:
            written = yaml.safe_load(config.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            written = None
        mine = isinstance(written, dict) and not differences(here, comparable(written, resumable))
        written_by = ((written or {}).get("distributed") or {}).get("torchrun_job") \
            if isinstance(written, dict) else None
        if mine and (written_by == job or not force):
            return Plan("fresh", clear=True)
    return Plan("fresh", force=force)


def clear_unsaved_start(run_dir: Path) -> None:
    """Remove what a run wrote before its first checkpoint (OWN_FILES), to start it again."""
    for name in OWN_FILES:
        path = run_dir / name
        if path.is_dir():
            for p in sorted(path.rglob("*"), reverse=True):
                p.unlink() if p.is_file() else p.rmdir()
            path.rmdir()
        else:
            path.unlink(missing_ok=True)


def agree(plan: Plan | None, dist: Dist) -> Plan:
    """Rank 0's plan on every rank."""
    if not dist.enabled:
        assert plan is not None
        return plan
    box = [asdict(plan) if plan is not None else None]
    tdist.broadcast_object_list(box, src=0)
    return Plan(**box[0])


def resume_line(run_dir: Path, plan: Plan, world_size: int, batch_size: int) -> str:
    """The one line a resumed worker group prints."""
    line = (f"resuming {run_dir} at epoch {plan.epoch + 1}, batch {plan.batch} (restart "
            f"{restart_count()} of torchrun)")
    if plan.world_size != world_size:
        line += (f"; {plan.world_size} -> {world_size} processes, the global batch of "
                 f"{batch_size} and the epoch's remaining samples kept")
    return line


def train_elastic(cfg: RunConfig, run_dir: str | Path, *, force: bool,
                  init: dict[str, Any] | None, resumable: tuple[str, ...] | dict[str, Any]
                  ) -> dict[str, Any]:
    """`alexnet train` as a torchrun worker: join the group, then start, resume or refuse as
    `plan_start` says, and turn a collective that failed into a `PeerFailure` naming the ranks
    that went silent."""
    run_dir = Path(run_dir)
    dist = init_distributed(cfg.device, cfg.dist_timeout)
    say = print if dist.is_main else (lambda *a, **k: None)
    alive = Liveness.start(dist)
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and dist.enabled:
        say(f"warning: torchrun shares one store over restarts; a restarted group can fail to "
            f"connect: start torchrun with {FRESH_STORE}=1 (docs/DISTRIBUTED.md)", flush=True)
    try:
        plan = agree(plan_start(cfg, run_dir, force=force, job=torchrun_job(),
                                resumable=resumable) if dist.is_main else None, dist)
        if plan.action == "refuse":
            raise ConfigError(plan.message)
        if plan.action == "done":
            say(f"{run_dir} has finished: {plan.epoch} of epochs={cfg.epochs} done; nothing "
                "to train", flush=True)
            return {"run_dir": str(run_dir), "interrupted": False, "epochs_done": plan.epoch,
                    "best_top1_err": math.nan, "val": None}
        if plan.action == "resume":
            state = load_checkpoint(run_dir / "last.pt")
            if (int(state["epoch"]), int(state["batch"])) != (plan.epoch, plan.batch):
                raise CheckpointError(
                    f"rank {dist.rank} reads {run_dir / 'last.pt'} at epoch {state['epoch']}, "
                    f"batch {state['batch']}, rank 0 at epoch {plan.epoch}, batch {plan.batch}: "
                    "the run folder must be on storage every node shares")
            resumed = copy.deepcopy(state["config"])
            given = cfg.to_dict()
            for key in resumable:  # a resume may change these: the command's values win
                node, there = given, resumed
                *parents, leaf = key.split(".")
                for part in parents:
                    node, there = node.get(part, {}), there.setdefault(part, {})
                if leaf in node:
                    there[leaf] = node[leaf]
            say(resume_line(run_dir, plan, dist.world_size, cfg.batch_size), flush=True)
            return train(resumed, run_dir, resume=True, state=state)
        if plan.clear and dist.is_main:
            clear_unsaved_start(run_dir)
        return train(cfg, run_dir, force=plan.force, init=init)
    except RuntimeError as err:  # torch.distributed's errors are RuntimeErrors
        if alive is None or not is_peer_failure(err):
            raise
        raise alive.failure(err, cfg.dist_timeout) from None
    finally:
        if alive is not None:
            alive.stop()
        shutdown_distributed()


# ---------------------------------------------------------------- who went silent

PEER_SIGNS = ("timed out", "timeout", "connection closed", "connection reset", "broken pipe",
              "socket", "gloo", "nccl", "peer")


def is_peer_failure(err: BaseException) -> bool:
    """Does `err` look like a collective that another process let down?"""
    text = str(err).lower()
    return isinstance(err, tdist.DistError) or any(sign in text for sign in PEER_SIGNS)


class Liveness:
    """A thread bumps `alexnet/alive/<rank>` ("<count> <host> <pid>") in torchrun's store every
    `every` seconds. A process stopped (SIGSTOP, a swapped-out node) or gone stops bumping it."""

    PREFIX = "alexnet/alive/"

    def __init__(self, store: Any, dist: Dist, every: float = 1.0) -> None:
        self.store, self.dist, self.every = store, dist, every
        self.done = threading.Event()
        self.count = 0
        self.me = f"{socket.gethostname()} {os.getpid()}"
        self.thread = threading.Thread(target=self._beat, name="alexnet-liveness", daemon=True)

    @classmethod
    def start(cls, dist: Dist) -> Liveness | None:
        """Start beating in the store at MASTER_ADDR:MASTER_PORT; None when running alone or
        without a store to reach."""
        if not dist.enabled or "MASTER_ADDR" not in os.environ:
            return None
        try:
            store = tdist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                                   is_master=False, timeout=timedelta(seconds=10),
                                   wait_for_workers=False)
        except (RuntimeError, ValueError, KeyError):
            return None
        alive = cls(store, dist)
        alive._bump()
        alive.thread.start()
        return alive

    def _bump(self) -> None:
        self.count += 1
        with contextlib.suppress(RuntimeError):  # the store's host is gone: `failure` says so
            self.store.set(f"{self.PREFIX}{self.dist.rank}", f"{self.count} {self.me}")

    def _beat(self) -> None:
        while not self.done.wait(self.every):
            self._bump()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)

    def read(self) -> dict[int, str]:
        """Every rank's last mark (ranks that never wrote one are missing)."""
        keys = [f"{self.PREFIX}{r}" for r in range(self.dist.world_size)]
        found: dict[int, str] = {}
        for rank, key in enumerate(keys):
            if self.store.check([key]):
                found[rank] = self.store.get(key).decode()
        return found

    def silent(self, wait: float = 3.0) -> dict[int, str]:
        """The ranks whose mark did not move in `wait` seconds: rank -> "host pid"."""
        before = self.read()
        time.sleep(wait)
        after = self.read()
        return {r: " ".join(after.get(r, "0 ? ?").split()[1:])
                for r in range(self.dist.world_size)
                if r != self.dist.rank and after.get(r) == before.get(r)}

    def failure(self, err: BaseException, timeout: float) -> PeerFailure:
        """The one error for a collective that failed on this rank."""
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        first = re.sub(r"^\[[^\]]*\]\s*", "", first)[:160]  # gloo's source location
        me = f"rank {self.dist.rank} of {self.dist.world_size}"
        try:
            silent = self.silent()
        except RuntimeError:
            return PeerFailure(
                f"{me}: the other processes and the store at MASTER_ADDR="
                f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} (rank 0's "
                f"node or the rendezvous host) stopped answering: hung or gone ({first})")
        if not silent:
            return PeerFailure(f"{me}: a collective failed while every process still answers "
                               f"({first})")
        names = ", ".join(f"rank {r} (pid {where.split()[-1]} on {where.split()[0]})"
                          for r, where in silent.items())
        return PeerFailure(
            f"{me}: {names} stopped answering (hung or gone) and the others waited "
            f"dist_timeout={timeout:g} s or lost the connection ({first}); torchrun restarts the "
            "workers while --max-restarts allows, and they resume from the last checkpoint")
