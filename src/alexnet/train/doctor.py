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
from dataclasses import dataclass


@dataclass
class RunDoctor:
    """Reads the losses the loop already has on the host (once per logging window and once per
    epoch: no extra synchronisation) and returns the message to print, or None."""

    num_classes: int
    lr: float
    stuck_tolerance: float = 0.01  # "within ~1% of ln K"
    warned_diverging: bool = False
    left_chance: bool = False  # has any epoch's training loss left ln K's neighbourhood?

    @property
    def chance_loss(self) -> float:
        return math.log(max(self.num_classes, 2))

    def _advice(self) -> str:
        return (f"try optim.lr={self.lr / 10:g} or model.init=xavier (or, for the paper's init, "
                "model.init_bias=0.1 as Caffe's bvlc_alexnet)")

    def window(self, epoch: int, step: int, loss: float) -> str | None:
        """A logging window's mean training loss: warns once when it is far above ln K."""
        limit = max(2 * self.chance_loss, self.chance_loss + 2)
        if self.warned_diverging or not math.isfinite(loss) or loss <= limit:
            return None
        self.warned_diverging = True
        return (f"warning: diverging: the training loss is {loss:.2f} at epoch {epoch + 1}, "
                f"step {step}, far above ln({self.num_classes}) = {self.chance_loss:.2f} (what "
                f"guessing uniformly gives): the updates overshoot; {self._advice()}")

    def epoch(self, epoch: int, train_loss: float, val_top1_err: float) -> str | None:
        """After an epoch: a message when its mean training loss did not get below ln K by more
        than the tolerance and the validation error is at chance (1 - 1/K, less 2 points)."""
        if not math.isfinite(train_loss):
            return None
        chance_err = 1 - 1 / max(self.num_classes, 2)
        learning = (train_loss < (1 - self.stuck_tolerance) * self.chance_loss
                    or val_top1_err < chance_err - 0.02)
        if learning:
            self.left_chance = True
            return None
        return (f"warning: stuck at chance: the training loss of epoch {epoch + 1} "
                f"({train_loss:.4f}) is not below ln({self.num_classes}) = "
                f"{self.chance_loss:.4f} and the validation error ({val_top1_err:.1%}) is "
                f"chance's: every prediction is the same class and the network is not learning; "
                f"{self._advice()}")

    @property
    def never_left_chance(self) -> bool:
        return not self.left_chance
