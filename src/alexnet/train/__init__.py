"""Training: §5's update rule, schedules, the loop, checkpoints, distributed and two-tower runs.

- `optim.PaperSGD`: v <- m·v - wd·ε·w - ε·g; w <- w + v (with per-tensor multipliers)
- `schedule`: the plateau rule of §5 and fixed epoch events (the released code's log)
- `config`: recipe + KEY=VALUE overrides -> the resolved config
- `loop.train(cfg, run_dir)`: the run; `runner.run_training(...)` is `alexnet train`
- `checkpoint`: atomic saves, safe loads; `distributed`: torchrun/DDP; `towers`: §3.2
"""

from alexnet.checkpoint import load_checkpoint, load_model, save_checkpoint
from alexnet.train.config import resolve_config
from alexnet.train.loop import TrainingDiverged, train
from alexnet.train.optim import PaperSGD

__all__ = ["PaperSGD", "TrainingDiverged", "load_checkpoint", "load_model", "resolve_config",
           "save_checkpoint", "train"]
