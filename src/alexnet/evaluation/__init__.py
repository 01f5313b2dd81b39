"""Evaluation: infer -> logits; centre/ten views (§4.1); ensembles (§6); top-k error; per-class
accuracy and confusion; prediction on image files; §6.1 features and retrieval; export."""

from alexnet.evaluation.infer import (
    average_views,
    confusion_matrix,
    ensemble,
    infer,
    infer_many,
    per_class_accuracy,
    topk_error,
)

__all__ = ["average_views", "confusion_matrix", "ensemble", "infer", "infer_many",
           "per_class_accuracy", "topk_error"]
