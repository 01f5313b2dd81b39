"""AlexNet (Krizhevsky, Sutskever & Hinton, NIPS 2012), faithfully and fast, in PyTorch."""

from alexnet.models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models"]
