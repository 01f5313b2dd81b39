"""AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012), faithfully and fast, in PyTorch."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models"]


def create_model(name: str, num_classes: int = 1000, in_channels: int = 3, **options: Any):
    """Build a registered AlexNet variant (see `alexnet models`)."""
    from alexnet.models import create_model as _create

    return _create(name, num_classes=num_classes, in_channels=in_channels, **options)


def list_models() -> list[str]:
    """Names of the registered AlexNet variants."""
    from alexnet.models import list_models as _list

    return _list()
