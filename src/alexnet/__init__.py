"""AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012), faithfully and fast, in PyTorch.

The Python API (README, "Python API"): `create_model(name, weights=...)`, `load(path)` -> a
`Classifier` with `classes`, `transforms`, `predict` and `save_pretrained`, `evaluate(checkpoint,
data)`, `list_models()`, and `train(recipe, data, out, **overrides)` -> a `Run`. They are
imported when first used, so `import alexnet` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alexnet.api import create_model, evaluate, load
    from alexnet.evaluation.predict import Classifier, Prediction
    from alexnet.models import list_models

__version__ = "0.1.0"

_LAZY = {"create_model": "alexnet.api", "evaluate": "alexnet.api", "load": "alexnet.api",
         "Classifier": "alexnet.evaluation.predict", "Prediction": "alexnet.evaluation.predict",
         "list_models": "alexnet.models"}
__all__ = ["Classifier", "Prediction", "__version__", "create_model", "evaluate", "list_models",
           "load", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":  # the package, callable: alexnet.train(recipe=..., data=..., out=...)
        return importlib.import_module("alexnet.train")
    if name not in _LAZY:
        raise AttributeError(f"module 'alexnet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # once: later lookups find it without this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "train"})
