"""The registry of the AlexNet family: each name, its source and its builder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from alexnet.errors import AlexNetError
from alexnet.models.base import AlexNetBase
from alexnet.models.cifar4 import Cifar4
from alexnet.models.others import D2LAlexNet, TorchvisionAlexNet
from alexnet.models.paper import PaperAlexNet

PAPER_FAMILY = ("paper", "original", "one-tower", "half")  # PaperAlexNet and its options


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str
    description: str
    builder: Callable[..., AlexNetBase]


_REGISTRY: dict[str, ModelInfo] = {info.name: info for info in (
    ModelInfo("paper", "paper §3.5, Fig. 2",
              "two towers (groups=2 at conv2/4/5), LRN, overlapping pooling, dropout",
              partial(PaperAlexNet, "paper")),
    ModelInfo("original", "released 2012 code, layers-145.cfg",
              "paper net as the code ran it: conv1-LRN-pool-ReLU, extra same-map norm, "
              "std 0.03 on conv3-5, bias lr x2 without decay",
              partial(PaperAlexNet, "original")),
    ModelInfo("one-tower", "paper §3.5, towers merged",
              "paper widths on one GPU (no groups)", partial(PaperAlexNet, "one-tower")),
    ModelInfo("half", "paper §3.2 ablation",
              "one GPU, half the kernels of conv1-4 (conv5 and fc kept, footnote 2)",
              partial(PaperAlexNet, "half")),
    ModelInfo("owt", "torchvision (One weird trick, 2014)",
              "64-192-384-256-256, no LRN; loads torchvision's pretrained weights",
              TorchvisionAlexNet),
    ModelInfo("d2l", "Dive into Deep Learning",
              "one tower, no LRN, for Fashion-MNIST at 224", D2LAlexNet),
    ModelInfo("cifar4", "cuda-convnet, layers-conv-local-13pct/11pct.cfg",
              "§3.1/§3.3's four-layer CIFAR-10 net: 2 conv + 2 locally-connected layers, fc10; "
              "32 px", Cifar4),
)}


def list_models() -> list[str]:
    """Names of the registered variants, in the order `alexnet models` shows them."""
    return list(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """Source and description of a variant; unknown names list the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AlexNetError(f"unknown model {name!r}; valid models: "
                           f"{', '.join(_REGISTRY)} (see `alexnet models`)") from None
