"""`cifar4`: the four-layer CIFAR-10 net behind §3.1's Fig. 1 and §3.3's 13% -> 11% figure.

The paper does not describe it ("specified precisely by the code and parameter files" of
cuda-convnet, §3.3's footnote). We take cuda-convnet's example nets (dnouri/cuda-convnet,
`example-layers/layers-conv-local-13pct.cfg` without response normalisation and
`layers-conv-local-11pct.cfg` with it; docs/paper-facts.md): two convolutional layers and two
locally-connected layers, then a 10-way fc layer. We also use it as Fig. 1's "four-layer
convolutional neural network" (§3.1): the same author's CIFAR-10 net of four hidden layers, the
one §3.3 names; Fig. 1's own parameter file was not released.

    conv1  64 @ 5×5, pad 2, ReLU          (B, 64, 32, 32) at 32 px
    [rnorm1 cross-map, 5 maps]             11pct only: scale 0.001, pow 0.75
    pool1  max 3×3, stride 2               (B, 64, 16, 16): cuda-convnet rounds up
    conv2  64 @ 5×5, pad 2, ReLU          (B, 64, 16, 16)
    [rnorm2 cross-map, 5 maps]
    pool2  max 3×3, stride 2               (B, 64, 8, 8)
    local3 32 @ 3×3, pad 1, ReLU, unshared (B, 32, 8, 8)
    local4 32 @ 3×3, pad 1, ReLU, unshared (B, 32, 8, 8)
    fc10   10                              (B, 10)

At 24 px (cuda-convnet's `cifar-cropped` provider with a 4-px border: convdata.py's
CroppedCIFARDataProvider) the maps are 24, 12, 6 and fc10 sees 32·6·6 = 1152 values.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from alexnet.errors import ConfigError
from alexnet.models.base import AlexNetBase
from alexnet.models.local_response_norm import LocalResponseNorm

# layers-conv-local-11pct.cfg, [rnorm1]/[rnorm2]: size=5, scale=0.001, pow=0.75, crossMap=1.
# layer.py divides the scale of a cross-map norm by its size (α/n, as the 2012 code and torch);
# cuda-convnet's norm kernels add 1 to the scaled sum (k = 1).
RNORM_ARGS = {"size": 5, "alpha": 1e-3, "beta": 0.75, "k": 1.0}
# initW of layers-conv-local-*.cfg (weights ~ N(0, initW²); every bias starts at 0).
INIT_STD = {"conv1": 1e-4, "conv2": 0.01, "local3": 0.04, "local4": 0.04, "fc10": 0.01}
# layer-params-conv-local-*.cfg: epsB = 2·epsW on every layer; wc = 0 on the conv layers, 0.004
# on local3, local4 and fc10; biases are never decayed.
NO_DECAY = ("conv1", "conv2")


def pooled_up(size: int, kernel: int = 3, stride: int = 2) -> int:
    """Output side of cuda-convnet's pooling (layer.py: 1 + ceil((size - sizeX) / stride))."""
    return 1 + math.ceil((size - kernel) / stride)


class LocallyConnected2d(nn.Module):
    """A convolution whose kernels are not shared: every output position has its own
    (out, in, k, k) kernel and its own biases (cuda-convnet's `type=local`).

    weight (L, out, in·k·k) with L = out_size², bias (out, out_size, out_size). The input is
    unfolded into its k×k patches, (B, in·k·k, L), and each position's patch meets its kernel
    in one einsum.
    """

    def __init__(self, in_channels: int, out_channels: int, in_size: int, kernel_size: int = 3,
                 padding: int = 1) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.padding = kernel_size, padding
        self.out_size = in_size + 2 * padding - kernel_size + 1  # stride 1
        if self.out_size < 1:
            raise ConfigError(f"a {kernel_size}×{kernel_size} locally-connected layer needs "
                              f"maps of at least {kernel_size - 2 * padding} px, got {in_size}")
        positions = self.out_size ** 2
        self.weight = nn.Parameter(torch.empty(positions, out_channels,
                                               in_channels * kernel_size ** 2))
        self.bias = nn.Parameter(torch.zeros(out_channels, self.out_size, self.out_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = F.unfold(x, self.kernel_size, padding=self.padding)  # (B, in·k·k, L)
        out = torch.einsum("bkl,lok->bol", patches, self.weight)  # (B, out, L)
        return out.unflatten(2, (self.out_size, self.out_size)) + self.bias  # (B, out, s, s)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, positions={self.out_size}x{self.out_size}")


class Cifar4(AlexNetBase):
    """cuda-convnet's layers-conv-local net (see the module docstring).

    - `lrn`: the 11pct net's cross-map response normalisation after the ReLU of conv1 and
      conv2 (before their pools); false: the 13pct net.
    - `activation`: `relu` (the cfg's `neuron=relu`) or `tanh` (§3.1's f(x) = tanh(x)), on
      every hidden layer.
    - `image_size`: 32 (whole CIFAR-10 images) or 24 (cuda-convnet's crops); the locally
      connected layers have one kernel per position, so the input side is fixed per model.
    - `init`: `original` (the cfg's initW per layer, biases 0), `paper` (§5's N(0, 0.01²) on
      every layer, biases 0) or `xavier`.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, *, lrn: bool = False,
                 activation: str = "relu", image_size: int = 32,
                 init: str | None = None) -> None:
        super().__init__()
        # The options' values are checked once, by create_model (models/options.py).
        init = init or "original"
        if image_size < 8:
            raise ConfigError(f"image_size {image_size} is too small for 'cifar4'; use 8 or more")
        self.config = {"name": "cifar4", "num_classes": num_classes, "in_channels": in_channels,
                       "lrn": lrn, "activation": activation, "image_size": image_size,
                       "init": init}

        def act() -> nn.Module:
            return nn.ReLU(inplace=True) if activation == "relu" else nn.Tanh()

        def norm() -> nn.Module:
            return LocalResponseNorm(**RNORM_ARGS) if lrn else nn.Identity()

        s1 = image_size  # 5×5 convs with pad 2 keep the side: 32
        s2 = pooled_up(s1)  # 16
        s3 = pooled_up(s2)  # 8
        self.features = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, 64, 5, padding=2)), ("relu1", act()),
            ("lrn1", norm()),  # (B, 64, 32, 32)
            ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),  # (B, 64, 16, 16)
            ("conv2", nn.Conv2d(64, 64, 5, padding=2)), ("relu2", act()), ("lrn2", norm()),
            ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),  # (B, 64, 8, 8)
            ("local3", LocallyConnected2d(64, 32, s3)), ("relu3", act()),  # (B, 32, 8, 8)
            ("local4", LocallyConnected2d(32, 32, s3)), ("relu4", act()),  # (B, 32, 8, 8)
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc10", nn.Linear(32 * s3 * s3, num_classes)),  # logits (B, 10): neuron=ident
        ]))
        self.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = self.config["image_size"]
        if x.shape[-2:] != (side, side):  # the locally-connected layers fix the input side
            raise ConfigError(f"cifar4 was built for {side}×{side} inputs (image_size={side}), "
                              f"got {tuple(x.shape[-2:])}; build it with image_size="
                              f"{x.shape[-1]} or feed {side}-px images")
        return super().forward(x)

    def _layers(self) -> dict[str, nn.Module]:
        return {"conv1": self.features.conv1, "conv2": self.features.conv2,
                "local3": self.features.local3, "local4": self.features.local4,
                "fc10": self.classifier.fc10}

    def reset_parameters(self) -> None:
        """The cfg's N(0, initW²) per layer (`original`), §5's N(0, 0.01²) (`paper`) or
        Xavier-uniform (fan-in and fan-out of one position's kernel); biases 0."""
        for name, layer in self._layers().items():
            if self.config["init"] == "xavier" and isinstance(layer, LocallyConnected2d):
                k2 = layer.kernel_size ** 2  # fans of one position's kernel, as a conv's
                bound = math.sqrt(6.0 / ((layer.in_channels + layer.out_channels) * k2))
                nn.init.uniform_(layer.weight, -bound, bound)
            elif self.config["init"] == "xavier":
                nn.init.xavier_uniform_(layer.weight)
            else:
                std = INIT_STD[name] if self.config["init"] == "original" else 0.01
                nn.init.normal_(layer.weight, 0.0, std)
            nn.init.zeros_(layer.bias)

    def embed(self, x: torch.Tensor, layer: str = "fc7") -> torch.Tensor:
        """`pool5` here is local4's output flattened (B, 32·8·8), the input of fc10; the net
        has no fc6/fc7 and no conv5."""
        if layer != "pool5":
            raise ConfigError(f"cifar4 has no {layer}: its one hidden feature layer is local4's "
                              "output, asked for as `pool5`")
        return torch.flatten(self.features(x), 1)

    def optim_groups(self) -> list[dict]:
        """layer-params-conv-local-*.cfg: biases learn at twice the weights' rate (epsB =
        2·epsW) without decay; conv1 and conv2 have no weight decay (wc = 0), local3, local4
        and fc10 the run's (0.004 in the cfg)."""
        groups = super().optim_groups()
        for g in groups:
            layer, kind = g["name"].split(".")[-2:]
            if kind == "bias":
                g["lr_mult"], g["wd_mult"] = 2.0, 0.0
            elif layer in NO_DECAY:
                g["wd_mult"] = 0.0
        return groups
