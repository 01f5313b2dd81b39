"""Training: §5's update rule, schedules, the loop, checkpoints, distributed and two-tower runs.

- `optim.PaperSGD`: v <- m·v - wd·ε·w - ε·g; w <- w + v (with per-tensor multipliers)
- `schedule`: the plateau rule of §5 and fixed epoch events (the released code's log)
- `config`: recipe + KEY=VALUE overrides -> the resolved, typed `RunConfig`
- `loop.train(cfg, run_dir)`: the run; `runner.fit(...)` is `alexnet train`, returning a `Run`
- `checkpoint`: atomic saves, safe loads; `distributed`: torchrun/DDP; `towers`: §3.2

Called, this package trains: `alexnet.train(recipe="paper", data=..., out=..., epochs=2)` is
`alexnet.train.fit(...)` (a module cannot be called by default; the class below makes this one
callable, so the package and the function share the name users expect).
"""

import sys
import types
from typing import Any

from alexnet.train.loop import TrainingDiverged, train
from alexnet.train.optim import PaperSGD
from alexnet.train.run_config import RunConfig, resolve_config
from alexnet.train.training_run import Run, fit
from alexnet.weights.checkpoint import load_checkpoint, load_model, save_checkpoint

__all__ = ["PaperSGD", "Run", "RunConfig", "TrainingDiverged", "fit", "load_checkpoint",
           "load_model", "resolve_config", "save_checkpoint", "train"]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Run:
        return fit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
