"""The paper's network and its relatives: `paper`, `original`, `one-tower`, `half`.

§3.5 and Fig. 2: five conv layers (96-256-384-384-256 kernels) and three fc layers (4096-4096-
classes). Two towers, one per GPU: with groups=2, conv2, conv4 and conv5 see only their own
tower's maps, while conv3, fc6, fc7 and fc8 see both. Channels [0:C/2] are tower 1.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from torch import nn

from alexnet.errors import ConfigError
from alexnet.models.base import AlexNetBase
from alexnet.models.dropout_scaling import make_dropout
from alexnet.models.local_response_norm import LocalResponseNorm, SameMapResponseNorm

# §3.3: n=5, α=1e-4, β=0.75; k=2 is the `lrn_k` option's default (Caffe's LRN uses k=1).
LRN_ARGS = {"size": 5, "alpha": 1e-4, "beta": 0.75}
# The released code's same-map norm after conv2 (`cnorm2a/b`): layer-params-145.cfg gives
# scale=0.001, pow=0.75 and no minDiv; layer.py divides the scale by size²; cuda-convnet's
# response-norm kernel computes the denominator as 1 + scale·Σ (k = 1).
RNORM_ARGS = {"size": 5, "alpha": 1e-3, "beta": 0.75, "k": 1.0}


@dataclass(frozen=True)
class Layout:
    """Kernels per conv layer and whether the towers are split (groups=2)."""

    widths: tuple[int, int, int, int, int]
    groups: int


LAYOUTS = {
    "paper": Layout((96, 256, 384, 384, 256), groups=2),  # §3.5, Fig. 2
    "original": Layout((96, 256, 384, 384, 256), groups=2),  # layers-145.cfg
    "one-tower": Layout((96, 256, 384, 384, 256), groups=1),  # the towers merged on one GPU
    # §3.2's one-GPU net with half the kernels; its footnote: conv5 and the fc layers are NOT
    # halved, so that both nets have about the same number of parameters.
    "half": Layout((48, 128, 192, 192, 256), groups=1),
}


def conv1_geometry(image_size: int) -> tuple[int, int]:
    """(output size, right/bottom zero padding) of conv1 (11×11, stride 4, no padding).

    The released code rounds the output size up (`layer.py`: 1 + ceil((2·pad + size - filter) /
    stride)), so 224 gives 1 + ceil(213/4) = 55, as Fig. 2 says. Rounding up is the same as
    zero-padding the right and bottom edges: (55-1)·4 + 11 - 224 = 3 pixels.
    """
    out = 1 + math.ceil((image_size - 11) / 4)
    return out, (out - 1) * 4 + 11 - image_size


def pooled(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


# §7: "removing any of the middle convolutional layers results in a loss of about 2% for the
# top-1 performance". `remove_conv` takes conv2..conv5: conv2-conv4 lie between the first and
# the last conv layer; conv5 is offered too, since "middle" may be read as "not conv1".
REMOVABLE_CONVS = (2, 3, 4, 5)


def removed_modules(remove_conv: int | None) -> set[str]:
    """The `features` modules that `remove_conv` leaves out: the conv and its ReLU, and for
    conv2 its norms too (they normalise conv2's responses); every pooling layer stays."""
    if remove_conv is None:
        return set()
    k = remove_conv
    return {f"conv{k}", f"relu{k}"} | ({"lrn2", "rnorm2"} if k == 2 else set())


class PaperAlexNet(AlexNetBase):
    """The paper family. `variant` picks the layout; options are the paper's ablations.

    `lrn_k`: the LRN's additive constant, §3.3's k=2; Caffe's LRN layer defaults to k=1
    (caffe.proto, LRNParameter.k), which the imported bvlc_alexnet weights need.

    `remove_conv`: §7's depth ablation, conv2, conv3, conv4 or conv5 left out with its ReLU
    (conv2 also with its LRN; its pooling stays, so every later size is the paper's). The
    rule: the next weight layer keeps its kernels, kernel size and tower connectivity and takes
    the removed layer's input maps, since then only the removed layer's own parameters and the
    next layer's input width change (nothing else is re-designed):
    conv2 gone: conv3 takes pool1's 96 maps; conv3 gone: conv4 (still groups=2) takes conv2's
    256, so the towers first meet at fc6; conv4 gone: conv5 takes conv3's 384; conv5 gone: pool5
    pools conv4's 384 maps and fc6 takes 384·6·6 = 13824 inputs (+18.9 M weights at 224).
    The remaining modules keep their names (features.conv5 stays conv5), so the state_dict of
    every layer that is left has the full net's key.
    """

    def __init__(self, variant: str = "paper", num_classes: int = 1000, in_channels: int = 3,
                 *, lrn: bool = True, pool: str = "overlap", activation: str = "relu",
                 dropout: float = 0.5, image_size: int = 224, init: str | None = None,
                 lrn_alpha_over_n: bool = True, lrn_per_tower: bool = True,
                 dropout_scaling: str = "test", init_bias: float = 1.0,
                 lrn_k: float = 2.0, remove_conv: int | None = None) -> None:
        super().__init__()
        # The options' values are checked once, by create_model (models/options.py).
        init = init or ("original" if variant == "original" else "paper")
        self.config = {"name": variant, "num_classes": num_classes, "in_channels": in_channels,
                       "lrn": lrn, "pool": pool, "activation": activation, "dropout": dropout,
                       "image_size": image_size, "init": init,
                       "lrn_alpha_over_n": lrn_alpha_over_n, "lrn_per_tower": lrn_per_tower,
                       "dropout_scaling": dropout_scaling, "lrn_k": float(lrn_k),
                       "remove_conv": remove_conv}
        if init != "xavier":  # xavier zeroes every bias: init_bias is refused there, not kept
            self.config["init_bias"] = float(init_bias)
        make_dropout(dropout, dropout_scaling)  # checks both before anything is built
        layout = LAYOUTS[variant]
        self.towers = layout.groups
        c1, c2, c3, c4, c5 = layout.widths
        g = layout.groups
        # §3.4: overlapping pooling z=3, s=2; the ablation uses z=s=2.
        pk, ps = (3, 2) if pool == "overlap" else (2, 2)

        def act() -> nn.Module:
            return nn.ReLU(inplace=True) if activation == "relu" else nn.Tanh()

        def norm() -> nn.Module:
            # Two towers: each GPU normalised only its own maps (layers-145.cfg: rnorm1a/rnorm1b),
            # so the 5-map window never spans the towers. lrn_per_tower=false: one window over all.
            groups = g if lrn_per_tower else 1
            return LocalResponseNorm(**LRN_ARGS, k=float(lrn_k), alpha_over_n=lrn_alpha_over_n,
                                     groups=groups) if lrn else nn.Identity()

        s1, pad1 = conv1_geometry(image_size)
        s2 = pooled(s1, pk, ps)  # 27 at 224
        s3 = pooled(s2, pk, ps)  # 13
        s5 = pooled(s3, pk, ps)  # 6
        if s5 < 1:
            raise ConfigError(f"image_size {image_size} is too small for {variant!r}: "
                              "the last pooling layer would have no output; use 63 or more")
        conv1 = nn.Sequential(OrderedDict(
            pad=nn.ZeroPad2d((0, pad1, 0, pad1)),  # (B, C, 227, 227) at 224
            conv=nn.Conv2d(in_channels, c1, 11, stride=4)))  # (B, 96, 55, 55)
        # Input maps of conv2..conv5 and fc6 (per position of the 6×6 grid). §7's ablation
        # (`remove_conv`): the layer after the removed one takes the removed one's input maps.
        ins = {2: c1, 3: c2, 4: c3, 5: c4, 6: c5}
        if remove_conv is not None:
            ins[remove_conv + 1] = ins[remove_conv]
        if variant == "original":
            # layers-145.cfg: conv1 -> cross-map norm -> pool (which carries the ReLU);
            # conv2 -> ReLU -> cross-map norm -> same-map norm (`rnorm`) -> pool.
            stem = [("conv1", conv1), ("lrn1", norm()), ("pool1", nn.MaxPool2d(pk, ps)),
                    ("relu1", act()),
                    ("conv2", nn.Conv2d(ins[2], c2, 5, padding=2, groups=g)), ("relu2", act()),
                    ("lrn2", norm()),
                    ("rnorm2", SameMapResponseNorm(**RNORM_ARGS) if lrn else nn.Identity()),
                    ("pool2", nn.MaxPool2d(pk, ps))]
        else:
            # §3.3-3.4: LRN after the ReLU of conv1 and conv2, then overlapping pooling.
            stem = [("conv1", conv1), ("relu1", act()), ("lrn1", norm()),
                    ("pool1", nn.MaxPool2d(pk, ps)),  # (B, 96, 27, 27)
                    ("conv2", nn.Conv2d(ins[2], c2, 5, padding=2, groups=g)),  # (B, 256, 27, 27)
                    ("relu2", act()), ("lrn2", norm()), ("pool2", nn.MaxPool2d(pk, ps))]
        layers = stem + [  # (B, 256, 13, 13)
            ("conv3", nn.Conv2d(ins[3], c3, 3, padding=1)), ("relu3", act()),  # both towers
            ("conv4", nn.Conv2d(ins[4], c4, 3, padding=1, groups=g)), ("relu4", act()),
            ("conv5", nn.Conv2d(ins[5], c5, 3, padding=1, groups=g)), ("relu5", act()),
            ("pool5", nn.MaxPool2d(pk, ps)),  # (B, 256, 6, 6)
        ]
        gone = removed_modules(remove_conv)
        self.features = nn.Sequential(OrderedDict((n, m) for n, m in layers if n not in gone))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc6", nn.Linear(ins[6] * s5 * s5, 4096)),  # 9216 inputs at 224: both towers
            # §4.2: dropout 0.5 on the outputs of fc6 and fc7; by default as the paper does it
            # (kept units unscaled in training, ×0.5 at test: models/dropout_scaling.py).
            ("relu6", act()), ("drop6", make_dropout(dropout, dropout_scaling)),
            ("fc7", nn.Linear(4096, 4096)), ("relu7", act()),
            ("drop7", make_dropout(dropout, dropout_scaling)),
            ("fc8", nn.Linear(4096, num_classes)),  # logits: no ReLU on fc8
        ]))
        self.reset_parameters()

    def _layers(self) -> dict[str, nn.Conv2d | nn.Linear]:
        mods = dict(self.features.named_children()) | dict(self.classifier.named_children())
        mods["conv1"] = self.features.conv1.conv
        return {n: mods[n] for n in
                ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8") if n in mods}

    def reset_parameters(self) -> None:
        """§5: weights ~ N(0, 0.01²); biases 1 in conv2, conv4, conv5, fc6, fc7 (to give the
        ReLUs positive inputs early), 0 elsewhere. Released code: std 0.03 for conv3-conv5.
        `xavier` (not from 2012; Glorot & Bengio 2010, as d2l's AlexNet): uniform weights scaled
        by fan-in + fan-out, zero biases. The paper's fixed std 0.01 leaves small or upsampled
        images (Fashion-MNIST at 64 px) at chance for thousands of steps; Xavier does not.

        `init_bias` replaces §5's 1 (Caffe's bvlc_alexnet uses 0.1: with 1, fc7's outputs are
        all large and positive, and on few classes §5's rate then overshoots; see
        docs/paper-facts.md, "Why the paper's init diverges on few classes")."""
        for name, layer in self._layers().items():
            if self.config["init"] == "xavier":
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
                continue
            std = 0.03 if self.config["init"] == "original" and name in ("conv3", "conv4",
                                                                          "conv5") else 0.01
            nn.init.normal_(layer.weight, 0.0, std)
            one = name in ("conv2", "conv4", "conv5", "fc6", "fc7")  # §5's biases of 1
            nn.init.constant_(layer.bias, self.config["init_bias"] if one else 0.0)

    @property
    def conv1(self) -> nn.Conv2d:
        return self.features.conv1.conv

    def optim_groups(self) -> list[dict]:
        """`original`: biases learn at 0.02, twice the starting rate of the weights, are not
        decayed, and keep that rate while the schedule lowers the weights' (layer-params-145.cfg:
        epsB = 0.02 throughout, wc = 0 for biases; only conv1's bias stops, with conv1's freeze).
        The paper (§5) uses one rate and decay for all."""
        groups = super().optim_groups()
        if self.config["name"] == "original":
            for g in groups:
                if g["name"].endswith(".bias"):
                    g["lr_mult"], g["wd_mult"], g["lr_fixed"] = 2.0, 0.0, True
        return groups
