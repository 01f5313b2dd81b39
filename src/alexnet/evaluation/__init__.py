"""Evaluation: `evaluate` (the one evaluation path: centre/ten views (§4.1), ensembles (§6),
loss and top-k error); the metrics it is made of; `alexnet eval`, `report`, `predict`,
`features`, `neighbors` (§6.1) and `export`."""

from alexnet.evaluation.evaluate import EvalResult, evaluate
from alexnet.evaluation.metrics import (
    average_views,
    confusion_matrix,
    ensemble,
    over_views,
    per_class_accuracy,
    top_classes,
    topk_error,
)

__all__ = ["EvalResult", "average_views", "confusion_matrix", "ensemble", "evaluate",
           "over_views", "per_class_accuracy", "top_classes", "topk_error"]
