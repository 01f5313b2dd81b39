"""The AlexNet family and its registry: `create_model(name, ...)`, `list_models()`."""

from __future__ import annotations

from typing import Any

from alexnet.errors import AlexNetError, ConfigError
from alexnet.models.base import AlexNetBase
from alexnet.models.local_response_norm import LocalResponseNorm, lrn_reference
from alexnet.models.options import option_problems
from alexnet.models.registry import PAPER_FAMILY, ModelInfo, list_models, model_info

__all__ = ["PAPER_FAMILY", "AlexNetBase", "LocalResponseNorm", "ModelInfo", "create_model",
           "list_models", "lrn_reference", "model_info"]


def create_model(name: str, num_classes: int = 1000, in_channels: int = 3,
                 **options: Any) -> AlexNetBase:
    """Build variant `name` (see `list_models()`) with the given classes, input channels and
    options (`lrn`, `pool`, `activation`, `dropout`, `image_size`, `init` for the paper family)."""
    info = model_info(name)
    options.pop("name", None)  # so that create_model(**model.config) works
    problems = option_problems(name, options)  # MODEL_OPTIONS and the builder's signature
    if problems:
        raise ConfigError(f"model {name!r}: " + "; ".join(problems))
    try:
        return info.builder(num_classes=num_classes, in_channels=in_channels, **options)
    except TypeError as err:
        raise AlexNetError(f"model {name!r} does not take these options: {err}") from None
