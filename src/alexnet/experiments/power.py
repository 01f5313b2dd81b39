"""Can a budget tell the paper's effect apart from seed noise? The power of `verdict.verdict`.

The verdict (verdict.py) says *agrees* when the mean effect over n seeds has the paper's sign
and exceeds the sample standard deviation of the per-seed effects (n >= 2), or the
experiment's floor (n = 1). If the per-seed effect is e_i ~ Normal(d, sigma^2), with d the
paper's effect and sigma the seed noise of the effect, the chance that a run *agrees* is

    n >= 2:  P(T > sqrt(n)),  T = sqrt(n) m / s ~ noncentral t(n - 1, sqrt(n) d / sigma)
    n  = 1:  P(e_1 > floor)  (with d > 0; mirrored for d < 0)

computed here by simulation with a fixed generator (no SciPy; the same answer every call).
Since the rule compares the mean with the spread of the effects, not with its standard error,
more seeds mostly sharpen the estimate of sigma: a budget whose noise sigma is as large as the
paper's effect d cannot tell it at any number of seeds. Only a budget with less noise (more
data, epochs, test images) can; that is what `assess` says.

sigma comes from measured seed spreads: the std over seeds of each arm's own number (e.g. its
test error), combined as for a difference of independent runs, sqrt(s_a^2 + s_b^2) (arms that
share a seed's data order usually vary together, so this is conservative), or the measured
std of the per-seed effect itself where the experiment has it.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any

TARGET = 0.8  # the usual power: the budget tells when it would agree 4 times in 5
DRAWS = 4000  # simulated experiments per estimate (±0.7% standard error at 80%)
MAX_SEEDS = 10  # the most seeds `assess` considers


@dataclass(frozen=True)
class Powered:
    """What the power rule says of one budget: the paper's effect, the seed noise, the power
    at the planned seeds, the fewest seeds that reach TARGET (None: none up to MAX_SEEDS)."""

    effect: float  # the paper's effect, in the experiment's effect units
    sigma: float  # seed noise of the per-seed effect under this budget (measured)
    seeds: int  # seeds planned
    power: float  # P(the verdict agrees | the effect is the paper's) at `seeds`
    tells: bool  # power >= TARGET
    seeds_needed: int | None  # the fewest seeds with power >= TARGET, None if none <= MAX_SEEDS
    reason: str  # one sentence with the numbers

    def asdict(self) -> dict[str, Any]:
        return asdict(self)


def effect_sigma(spread_a: float, spread_b: float) -> float:
    """The seed noise of a difference of two arms from each arm's std over seeds (independent
    runs: sqrt(s_a^2 + s_b^2))."""
    if spread_a < 0 or spread_b < 0:
        raise ValueError("a standard deviation is not negative")
    return math.hypot(spread_a, spread_b)


def power(effect: float, sigma: float, seeds: int, *, floor: float,
          draws: int = DRAWS, seed: int = 0) -> float:
    """The chance that `verdict.verdict` agrees when the per-seed effect is Normal(effect,
    sigma^2), with `seeds` seeds (the floor is the one-seed spread, as in the verdict)."""
    if seeds < 1:
        raise ValueError(f"seeds={seeds}: at least one")
    if effect == 0:
        return 0.0  # no direction to agree with (verdict: inconclusive)
    if sigma <= 0:
        return 1.0 if seeds > 1 or abs(effect) > floor else 0.0
    sign = 1.0 if effect > 0 else -1.0
    rng = random.Random(seed)
    hits = 0
    for _ in range(draws):
        values = [sign * rng.gauss(effect, sigma) for _ in range(seeds)]  # paper's sign: +
        m = math.fsum(values) / seeds
        if seeds == 1:
            spread = floor
        else:
            spread = math.sqrt(math.fsum((v - m) ** 2 for v in values) / (seeds - 1))
        hits += m > 0 and m > spread
    return hits / draws


def assess(effect: float, sigma: float, seeds: int, *, floor: float, fmt: str = "{:.3g}",
           target: float = TARGET, max_seeds: int = MAX_SEEDS, over: str = "seed(s)"
           ) -> Powered:
    """Whether a budget with seed noise `sigma` tells the paper's `effect` with `seeds` seeds,
    and the fewest seeds that would (in the effect's units; `fmt` formats them; `over` names
    what the effects are one per, as in `verdict.verdict`)."""
    p = power(effect, sigma, seeds, floor=floor)
    needed = next((n for n in range(1, max_seeds + 1)
                   if power(effect, sigma, n, floor=floor) >= target), None)
    ratio = abs(effect) / sigma if sigma > 0 else math.inf
    head = (f"the paper's effect {fmt.format(effect)} is {ratio:.2f}× the seed noise "
            f"{fmt.format(sigma)}: with {seeds} {over} the verdict would agree "
            f"{p:.0%} of the time")
    if p >= target:
        tail = "enough to tell"
    elif needed is not None:
        tail = f"too few to tell; {needed} would ({target:.0%})"
    else:
        tail = (f"this budget cannot tell at up to {max_seeds} seeds: its noise must fall "
                "below the effect (more data, epochs or test images)")
    return Powered(effect, sigma, seeds, p, p >= target, needed, f"{head}, {tail}")


@dataclass(frozen=True)
class PowerNote:
    """An experiment's power argument: the paper's effect in its effect units, the seed noise
    measured under its QUICK budget (and where), and what would tell when QUICK cannot."""

    effect: float  # the paper's effect, as the experiment's `effect` defines it
    sigma: float | None  # measured seed noise of the per-seed effect (QUICK); None: unmeasured
    measured: str  # where sigma comes from: command, data, seeds
    full: str  # what tells when QUICK cannot: the full mode, its data, its cost (CPU, one GPU)
    fmt: str = "{:.3g}"
    per_seed: int = 1  # effects each seed gives the verdict (e.g. one per removed layer)

    def assess(self, seeds: int, floor: float) -> Powered | None:
        """The rule applied to `seeds` seeds (None when the noise was never measured)."""
        if self.sigma is None:
            return None
        return assess(self.effect, self.sigma, seeds * self.per_seed, floor=floor,
                      fmt=self.fmt, over="seed(s)" if self.per_seed == 1 else
                      f"effects ({seeds} seed(s) × {self.per_seed})")

    def statement(self, seeds: int, floor: float) -> str:
        """One line to print before an experiment runs."""
        result = self.assess(seeds, floor)
        if result is None:
            return (f"power: not assessed, the seed noise of this budget is unmeasured "
                    f"({self.measured}); what would tell: {self.full}")
        if result.tells:
            return f"power: {result.reason} ({self.measured})"
        return (f"power: QUICK cannot tell: {result.reason} ({self.measured}); what would "
                f"tell: {self.full}")
