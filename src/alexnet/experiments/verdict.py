"""Does our measurement agree with the paper's? A verdict computed from the numbers.

Every experiment reduces its result to an *effect*: one signed number per seed, defined as the
paper defines its own (e.g. "test error without LRN minus test error with it": +2 points in
§3.3), so that the paper's effect and ours can be compared by sign. The size is reported beside
it but not judged: a QUICK run on other data is not expected to match the paper's magnitude.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

AGREES, DISAGREES, INCONCLUSIVE = "agrees", "disagrees", "inconclusive"

RULE = ("agrees: the mean effect over seeds has the paper's sign and its distance from zero "
        "exceeds the seed spread (sample standard deviation over seeds; with one seed, the "
        "experiment's stated floor); disagrees: the opposite sign, equally far from zero; "
        "inconclusive: otherwise")


@dataclass(frozen=True)
class Verdict:
    word: str  # agrees | disagrees | inconclusive
    reason: str  # one sentence with the numbers that decided it
    mean: float | None  # mean effect over seeds (None when nothing was measured)
    spread: float | None  # what the mean had to exceed: the std over seeds, or the floor
    n: int  # seeds with an effect
    paper: float  # the paper's effect

    def asdict(self) -> dict[str, Any]:
        return {**asdict(self), "rule": RULE}


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1 in the denominator; None for one value)."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def verdict(effects: Sequence[float], paper: float, *, floor: float,
            fmt: str = "{:+.4g}", paper_text: str | None = None,
            over: str = "seeds") -> Verdict:
    """The verdict on per-seed `effects` against the paper's effect `paper` (same definition,
    same sign convention).

    With n effects e_1..e_n, m = their mean and s their sample standard deviation:

    - the spread is s when n >= 2, and `floor` when n = 1 (one seed has no spread of its own:
      the experiment states the smallest effect it takes as more than noise);
    - *agrees* when m has the sign of `paper` and |m| > spread (zero lies outside m ± spread);
    - *disagrees* when m has the opposite sign and |m| > spread;
    - *inconclusive* otherwise: |m| <= spread (zero within the spread), m = 0, no effect
      measured (n = 0), a non-finite effect, or a paper effect of 0 (no direction to agree with).

    `fmt` formats the numbers in the reason; `paper_text` replaces the paper's number there
    where the paper states only a direction (e.g. Fig. 3: "one tower colour-specific"; then
    `paper` is +1 or -1 and only its sign counts); `over` names what the effects are one per
    (e.g. "runs" where each seed gives one effect per ablated layer).
    """
    values = [float(e) for e in effects]
    n = len(values)
    if n == 0:
        return Verdict(INCONCLUSIVE, "no effect was measured (no seed gave a number)", None,
                       None, 0, paper)
    if not all(math.isfinite(v) for v in values):
        return Verdict(INCONCLUSIVE, "an effect is not a finite number", None, None, n, paper)
    m, s = mean_std(values)
    spread = s if s is not None else float(floor)
    what = (f"the std over {n} {over}, {fmt.format(spread)}" if s is not None
            else f"the floor for one seed, {fmt.format(spread)}")
    if paper == 0:
        return Verdict(INCONCLUSIVE, "the paper's effect is 0: no direction to compare",
                       m, spread, n, paper)
    if m == 0 or abs(m) <= spread:
        return Verdict(INCONCLUSIVE, f"mean effect {fmt.format(m)} is within {what}", m,
                       spread, n, paper)
    same = (m > 0) == (paper > 0)
    side = "the paper's sign" if same else "the opposite sign to the paper's"
    stated = paper_text if paper_text is not None else fmt.format(paper)
    return Verdict(AGREES if same else DISAGREES,
                   f"mean effect {fmt.format(m)} has {side} ({stated}) and exceeds "
                   f"{what}", m, spread, n, paper)
