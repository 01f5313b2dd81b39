"""AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012), faithfully and fast, in PyTorch."""

from alexnet.models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models", "train"]


def __getattr__(name: str) -> object:
    """`alexnet.train` on first use: importing the training stack takes seconds, and the
    package is callable (`alexnet.train(recipe="paper", data=..., out=...)`, train/__init__.py)."""
    if name == "train":
        import importlib

        return importlib.import_module("alexnet.train")
    raise AttributeError(f"module 'alexnet' has no attribute {name!r}")
