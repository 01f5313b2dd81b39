"""Says early, in one line, when a run has gone wrong: diverging, or stuck at chance.

A network that predicts every one of K classes with probability 1/K has a cross-entropy of
ln K (2.30 for 10 classes, 6.91 for 1000). A training loss far above it after the first steps
means the updates overshoot (diverging); a training loss that stays within ~1% of it for a
whole epoch means the network gives every image the same scores: every prediction is the same
class. Both are what §5's init does at §5's learning rate on a few classes
(docs/paper-facts.md, "Why the paper's init diverges on few classes").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# No stuck-at-chance verdict before this many training steps. §5's init (weights N(0, 0.01²),
# biases of 1 or 0.1) starts with tiny activations that SGD has to grow before the scores
# depend on the image: a run can sit exactly at chance for its first ~100 steps and then
# learn (a `paper` QUICK run on 10 classes: 90.0% validation error after 50 steps, 83.2% after
# 100, 80.4% after 150). Three times the latest start seen leaves room for a slower one.
MIN_STEPS_FOR_STUCK = 300
# How far below chance the validation error must be to count as learning: Z standard errors
# of a binomial. At chance each of the n validation images is right with probability 1/K, so
# the error has standard deviation sqrt((1/K)(1 - 1/K)/n) (0.3 points for 10,000 images of 10
# classes, 1.3 points for 500); 3 of them make "below chance by luck" a 1-in-700 event.
Z = 3.0


def chance_margin(num_classes: int, images: int) -> float:
    """Z binomial standard errors of the top-1 error of guessing among `num_classes` on
    `images` images: less than this below chance is not evidence of learning."""
    p = 1 / max(num_classes, 2)
    return Z * math.sqrt(p * (1 - p) / max(images, 1))


@dataclass
class RunDoctor:
    """Reads the losses the loop already has on the host (once per logging window and once per
    epoch: no extra synchronisation) and returns the message to print, or None.

    `model`: the run's model config (`model.config`): advice names only options this model has
    and values it does not already use; `fine_tuned`: the weights were loaded (init_from), so
    the init is no remedy."""

    num_classes: int
    lr: float
    model: dict[str, Any] = field(default_factory=dict)
    fine_tuned: bool = False
    stuck_tolerance: float = 0.01  # "within ~1% of ln K"
    warned_diverging: bool = False
    left_chance: bool = False  # has any epoch's training loss left ln K's neighbourhood?

    @property
    def chance_loss(self) -> float:
        return math.log(max(self.num_classes, 2))

    def _advice(self) -> str:
        """What to try: a lower rate, then the init options this model has and does not use."""
        tries = [f"optim.lr={self.lr / 10:g}"]
        init = self.model.get("init")
        if not self.fine_tuned and init is not None and init != "xavier":
            tries.append("model.init=xavier")
        if (not self.fine_tuned and init in ("paper", "original") and "init_bias" in self.model
                and self.model["init_bias"] != 0.1):
            tries.append("model.init_bias=0.1 (Caffe's bvlc_alexnet, for §5's init)")
        return "try " + " or ".join(tries)

    def window(self, epoch: int, step: int, loss: float) -> str | None:
        """A logging window's mean training loss: warns once when it is far above ln K."""
        limit = max(2 * self.chance_loss, self.chance_loss + 2)
        if self.warned_diverging or not math.isfinite(loss) or loss <= limit:
            return None
        self.warned_diverging = True
        return (f"warning: diverging: the training loss is {loss:.2f} at epoch {epoch + 1}, "
                f"step {step}, far above ln({self.num_classes}) = {self.chance_loss:.2f} (what "
                f"guessing uniformly gives): the updates overshoot; {self._advice()}")

    def epoch(self, epoch: int, train_loss: float, val_top1_err: float, *,
              steps: int | None = None, val_images: int | None = None) -> str | None:
        """After an epoch (`steps`: training steps so far; `val_images`: how many images the
        validation error is over): a message when the run has trained MIN_STEPS_FOR_STUCK
        steps, its mean training loss is not below ln K by more than the tolerance, and the
        validation error is within `chance_margin` of chance (1 - 1/K). None (unknown) counts
        as enough steps and 10,000 images."""
        if not math.isfinite(train_loss):
            return None
        chance_err = 1 - 1 / max(self.num_classes, 2)
        margin = chance_margin(self.num_classes, val_images or 10_000)
        learning = (train_loss < (1 - self.stuck_tolerance) * self.chance_loss
                    or val_top1_err < chance_err - margin)
        if learning:
            self.left_chance = True
            return None
        if steps is not None and steps < MIN_STEPS_FOR_STUCK:
            return None  # too early to tell (see MIN_STEPS_FOR_STUCK)
        return (f"warning: stuck at chance: the training loss of epoch {epoch + 1} "
                f"({train_loss:.4f}) is not below ln({self.num_classes}) = "
                f"{self.chance_loss:.4f} and the validation error ({val_top1_err:.1%}) is "
                f"chance's after {steps if steps is not None else 'all its'} steps: every "
                f"prediction is the same class and the network is not learning; "
                f"{self._advice()}")

    @property
    def never_left_chance(self) -> bool:
        return not self.left_chance
