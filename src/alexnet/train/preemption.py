"""How much work a stop costs: signals that stop the loop at a step boundary with a checkpoint
(`StopRequest`), and checkpoints inside an epoch (`CheckpointClock`).

A preemption (a scheduler's SIGTERM, torchrun forwarding its own SIGTERM, Ctrl-C) sets a flag;
the loop saves last.pt at the next step boundary all processes agree on and exits. torchrun
gives its workers 30 s between SIGTERM and SIGKILL, so that boundary (every `log_every` steps in
a distributed run) must come sooner.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alexnet.train.distributed import Dist, any_process, torchrun_job


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the next step boundary."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.requested = True

    @contextmanager
    def installed(self) -> Iterator[StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set from the main thread
            return
        old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


class CheckpointClock:
    """When the loop writes last.pt inside an epoch: every `every` steps, and/or once `minutes`
    have passed since the last checkpoint. Every process must answer alike, since saving is a
    collective (`rng_state` gathers every rank's RNG): the step count is the same on all ranks
    by construction; the clock is read at the ends of `log_every` windows and any rank past
    the time makes all save (one all-reduce per window)."""

    def __init__(self, every: int | None, minutes: float | None, dist: Dist) -> None:
        self.every, self.dist = every, dist
        self.seconds = minutes * 60 if minutes else None
        self.last = time.monotonic()

    def due(self, steps_done: int, window: int) -> bool:
        """After step `steps_done` (counted from the epoch's start); `window`: steps since the
        last host sync (0 = one just happened)."""
        due = bool(self.every) and steps_done % self.every == 0  # type: ignore[operator]
        if self.seconds is not None and window == 0:
            late = time.monotonic() - self.last >= self.seconds
            due = any_process(late, self.dist) or due
        if due:
            self.last = time.monotonic()
        return due


def stopped_message(run_dir: Path, epoch: int, batch: int) -> str:
    """What the loop prints when a signal stopped it at (epoch, batch)."""
    where = (f"\nstopped at epoch {epoch}, batch {batch}; checkpoint {run_dir / 'last.pt'}.")
    if torchrun_job() is not None:
        return (where + "\ntorchrun's restarted workers resume it by themselves; so does "
                "the same command started again")
    return where + f"\nresume with: alexnet train --resume {run_dir}"
