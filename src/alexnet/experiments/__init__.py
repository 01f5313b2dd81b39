"""The paper's experiments, one command each, with the paper's claim beside the result.

- `relu-vs-tanh` (§3.1, Fig. 1), `lrn-cifar` (§3.3): the four-layer CIFAR-10 net (`cifar4`)
- `views` (§4.1): centre vs ten-view testing; `ensemble` (§6): the softmax average of k nets

Each arm is an ordinary run folder trained by `alexnet.train` (so `alexnet eval`, `report` and
`train --resume` work on it); the results are measured through `alexnet.evaluation`, judged by
`verdict.verdict` (a rule on the numbers, never a fixed answer) and written as results.json,
results.md and a figure (`alexnet.figures.experiments`).
"""

from alexnet.experiments.catalog import EXPERIMENTS, get_experiment, list_experiments
from alexnet.experiments.runner import report_experiment, run_experiment
from alexnet.experiments.verdict import Verdict, verdict

__all__ = ["EXPERIMENTS", "Verdict", "get_experiment", "list_experiments", "report_experiment",
           "run_experiment", "verdict"]
