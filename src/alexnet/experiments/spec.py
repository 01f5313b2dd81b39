"""What an experiment is (`Experiment`), how one invocation asks for it (`Plan`), what its
analysis returns (`Outcome`) and the runs it analyses (`ArmRun`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alexnet.experiments.arms import Arm
from alexnet.experiments.power import PowerNote
from alexnet.experiments.verdict import Verdict


@dataclass(frozen=True)
class Plan:
    """One `alexnet experiment run`: everything that decides its arms (saved as plan.json;
    running it again with the same plan continues it)."""

    name: str
    data: str | None  # data.source of every arm (None: the experiment's default)
    seeds: int  # independently seeded runs per condition (seed = 0 .. seeds-1; 0 with --from)
    quick: bool  # the QUICK version (no CUDA and no --full)
    extra: dict[str, Any] = field(default_factory=dict)  # KEY=VALUE for every arm
    source: str | None = None  # --from: trained runs to evaluate instead of training arms

    def asdict(self) -> dict[str, Any]:
        return {"name": self.name, "data": self.data, "seeds": self.seeds, "quick": self.quick,
                "extra": self.extra, "source": self.source}


@dataclass(frozen=True)
class ArmRun:
    """A finished run folder the analysis reads: an arm of this experiment, or a run given
    with --from."""

    name: str
    folder: Path
    tags: dict[str, Any]


@dataclass
class Outcome:
    """An experiment's measured result.

    rows: {"quantity", "ours": [per-seed values], "paper": value or None, "unit": "%" |
    "epochs" | "x", "note": optional}; effect: {"name", "values": [per seed], "paper", "unit",
    "note": optional, "paper_text": optional, the paper's effect in words where it states only
    a direction}; draw(path) writes the figure from the same numbers.
    """

    rows: list[dict[str, Any]]
    effect: dict[str, Any]
    verdict: Verdict
    draw: Callable[[Path], Path]
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Experiment:
    """One of the paper's experiments: its claim, the arms that test it and the analysis."""

    name: str
    section: str  # e.g. "§3.1, Fig. 1"
    claim: str  # the paper's claim in one sentence
    paper: str  # the paper's number(s), as the paper states them
    default_data: str | None  # data.source when --data is not given; None: --data needed
    data_hint: str  # what --data may be
    seeds: tuple[int, int]  # default seeds: (QUICK, full)
    cost: tuple[str, str]  # (QUICK, full) wall time, measured or estimated (it says which)
    varies: tuple[str, ...]  # the keys the experiment sets per arm (refused as KEY=VALUE)
    floor: float  # the smallest effect one seed is taken to show (verdict.verdict)
    floor_why: str
    arms: Callable[[Plan], list[Arm]]  # the runs to train (none with --from)
    analyse: Callable[[Plan, list[ArmRun]], Outcome]
    takes_runs: bool = False  # accepts --from (evaluates runs trained elsewhere)
    power: PowerNote | None = None  # the paper's effect against the QUICK budget's seed noise
    # More arms once `arms` have finished (e.g. the seeds at a sweep's fastest rate); an arm
    # of the same name as a finished one is that run (it is not trained again).
    followup: Callable[[Plan, list[ArmRun]], list[Arm]] | None = None
    # After a followup arm finishes: the total epochs it should have now (it continues, as
    # `alexnet train --resume RUN epochs=N`), or None when it is done.
    more_epochs: Callable[[Plan, ArmRun], int | None] | None = None
