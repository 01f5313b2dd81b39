"""Caffe's bvlc_alexnet weights on our `paper` model: `caffe_checkpoint(weights_path)`.

The BVLC model zoo's bvlc_alexnet (models/bvlc_alexnet in BVLC/caffe) is the paper's network
with Caffe's conventions, each of which has a `paper` option or a preprocessing entry here:
- input 227×227 to an unpadded conv1 (55×55 out): `image_size=227` (conv1_geometry(227) pads 0);
- BGR images: conv1's input channels are flipped to RGB here;
- LRN (caffe.proto's LRNParameter, lrn_layer.cpp): x / (k + α/n · Σ x²)^β, k = 1, the window
  over all 96 (256) maps, since Caffe's `group` splits only convolutions: `lrn_k=1`,
  `lrn_alpha_over_n=True`, `lrn_per_tower=False`;
- grouped convolutions conv2, conv4, conv5 with group 2: Caffe's group g reads input channels
  [g·C/2, (g+1)·C/2) and writes outputs [g·O/2, (g+1)·O/2), as torch's `groups=2` does;
- fc6's (4096, 9216) weights read pool5's (256, 6, 6) blob in C, H, W order, as torch.flatten;
- inverted dropout (scaled in training): `dropout_scaling="train"`; biases started at 0.1
  (the model zoo's readme): `init_bias=0.1`, for a retrain of the same configuration;
- Caffe's pooling rounds its output size up, ours down: equal here (55, 27, 13 → 27, 13, 6).
Pixels are 0..255 in both; the mean is subtracted, nothing is divided (std 1).
"""

from __future__ import annotations

import math
import os
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from alexnet.errors import AlexNetError, CheckpointError, DataError
from alexnet.models import AlexNetBase, create_model
from alexnet.models.local_response_norm import LocalResponseNorm
from alexnet.weights.caffe_proto import Blob, Layer, WireError, read_blob, read_net, read_prototxt

CAFFE_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
# BVLC/caffe examples/00-classification.ipynb: ilsvrc_2012_mean.npy (the ILSVRC-2012 training
# mean image) averaged over its pixels, in Caffe's BGR order.
CAFFE_MEAN_BGR = (104.0069879317889, 116.66876761696767, 122.6789143406786)
MEAN_SIDE = 256  # examples/imagenet: images (and so the mean image) are 256×256
CROP = 227  # bvlc_alexnet's train_val / deploy: crop_size 227, input 227×227
# bvlc_alexnet's readme (BVLC model zoo): "top-1 accuracy 57.1% and a top-5 accuracy 80.2% on
# the validation set, using just the center crop".
EXPECTED = {"top1_err": 0.429, "top5_err": 0.198,
            "note": "BVLC model zoo: 57.1% / 80.2% top-1/top-5 accuracy, centre crop, "
                    "ILSVRC-2012 val"}
# caffe.proto LRNParameter defaults (local_size 5, alpha 1, beta 0.75, ACROSS_CHANNELS, k 1);
# bvlc_alexnet sets local_size 5, alpha 0.0001, beta 0.75, which our LRN hard-codes (§3.3).
LRN_DEFAULTS = {"local_size": 5, "alpha": 1.0, "beta": 0.75, "norm_region": 0, "k": 1.0}
LRN_OURS = {"local_size": 5, "alpha": 1e-4, "beta": 0.75}
_KIND = {"CONVOLUTION": "conv", "LRN": "lrn", "POOLING": "pool", "INNERPRODUCT": "fc"}


def caffe_model(lrn_k: float = 1.0) -> AlexNetBase:
    """Our `paper` model configured as Caffe's bvlc_alexnet (see the module docstring)."""
    return create_model("paper", num_classes=1000, image_size=CROP, lrn_k=lrn_k,
                        lrn_alpha_over_n=True, lrn_per_tower=False, dropout_scaling="train",
                        init_bias=0.1)


def ilsvrc_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 wnids, sorted: Caffe's class order too (examples/imagenet's readme:
    "we sort the synset names in their ASCII order, and then label them from 0 to 999")."""
    text = (files("alexnet") / "data" / "ilsvrc2012_wnids.txt").read_text(encoding="utf-8")
    wnids = [w for w in text.split() if w.startswith("n") and w[1:].isdigit()]
    if len(wnids) != 1000 or wnids != sorted(wnids):
        raise AlexNetError("the package's data/ilsvrc2012_wnids.txt is damaged (expected 1000 "
                           f"sorted wnids, found {len(wnids)}); reinstall alexnet")
    return wnids


# ---------------------------------------------------------------- reading the files

def read_caffemodel(path: Path) -> list[Layer]:
    """The layers of a binary `.caffemodel`; one `CheckpointError` for any unreadable file."""
    data = _read_bytes(path, CheckpointError, "Caffe model")
    try:
        layers = read_net(data)
    except WireError as err:
        raise CheckpointError(f"{path} ({len(data):,} bytes) is not a readable Caffe model "
                              f"(.caffemodel): truncated or corrupt: {err}") from None
    if not any(layer.blobs for layer in layers):
        raise CheckpointError(f"{path} ({len(data):,} bytes) holds no layers with weights: it "
                              "is not a trained .caffemodel (a .prototxt, a .solverstate or "
                              "another file?)")
    return layers


def read_deploy(path: Path) -> list[Layer]:
    """The layers of a text `.prototxt`: names, types, convolution and LRN parameters."""
    data = _read_bytes(path, CheckpointError, "Caffe prototxt")
    try:
        layers = read_prototxt(data.decode("utf-8"))
    except (UnicodeDecodeError, WireError) as err:
        raise CheckpointError(f"{path} is not a Caffe .prototxt (text NetParameter): "
                              f"{err}") from None
    if not layers:
        raise CheckpointError(f"{path} defines no `layer {{ ... }}` or `layers {{ ... }}`: "
                              "not a Caffe net .prototxt")
    return layers


def read_mean(path: Path) -> torch.Tensor:
    """A `.binaryproto` mean image (BlobProto, 1×3×256×256 BGR) as float (3, 256, 256) RGB."""
    data = _read_bytes(path, DataError, "mean file")
    try:
        blob = read_blob(data)
    except WireError as err:
        raise DataError(f"{path} ({len(data):,} bytes) is not a readable Caffe mean "
                        f".binaryproto: truncated or corrupt: {err}") from None
    shape = blob.shape[1:] if len(blob.shape) == 4 and blob.shape[0] == 1 else blob.shape
    want = (3, MEAN_SIDE, MEAN_SIDE)
    if tuple(shape) != want or blob.data.size != math.prod(want):
        raise DataError(f"{path}: expected a 1x3x{MEAN_SIDE}x{MEAN_SIDE} BGR mean image "
                        f"(Caffe's imagenet_mean.binaryproto), found shape {blob.shape} with "
                        f"{blob.data.size:,} values")
    return torch.from_numpy(blob.data.reshape(want)[::-1].copy())  # BGR -> RGB


def _read_bytes(path: Path, error: type[Exception], what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise error(f"cannot read the {what} {path}: {err.strerror or err}") from None


# ---------------------------------------------------------------- checking the net

def _kinds(layers: list[Layer]) -> list[str]:
    return [_KIND[layer.type] for layer in layers if layer.type in _KIND]


def _model_kinds(model: AlexNetBase) -> list[str]:
    """The paper model's conv / lrn / pool / fc sequence, read from its modules."""
    kinds = {nn.Conv2d: "conv", LocalResponseNorm: "lrn", nn.MaxPool2d: "pool", nn.Linear: "fc"}
    out = []
    for module in [*model.features.children(), *model.classifier.children()]:
        if isinstance(module, nn.Sequential):  # conv1: zero pad + conv
            module = module[-1]
        out += [kind for cls, kind in kinds.items() if isinstance(module, cls)][:1]
    return out


def check_order(where: Path, net: list[Layer], model: AlexNetBase) -> None:
    """The layers come in bvlc_alexnet's order (conv, LRN, pool, conv, LRN, pool, ...).
    bvlc_reference_caffenet has the same weight shapes but pools before it normalises."""
    found = _kinds(net)
    if not any(k in ("lrn", "pool") for k in found):
        return  # weights only (a stripped file): the order cannot be read
    expected = _model_kinds(model)
    if found != expected:
        raise CheckpointError(
            f"{where}: the layers are not bvlc_alexnet's: expected the sequence "
            f"{' '.join(expected)}, found {' '.join(found)} (bvlc_reference_caffenet, for one, "
            "pools before it normalises; the paper model cannot run that net)")


def lrn_k(where: Path, net: list[Layer]) -> float:
    """Caffe's LRN k of the net (1 unless set), after checking that both LRN layers are the
    paper's (local_size 5, alpha 1e-4, beta 0.75, across channels) and share one k."""
    ks = set()
    for layer in net:
        if layer.type != "LRN":
            continue
        given = layer.params.get("lrn_param", {})
        values = {name: _last(given.get(name), default) for name, default in LRN_DEFAULTS.items()}
        region = {0: "ACROSS_CHANNELS", 1: "WITHIN_CHANNEL"}.get(values["norm_region"],
                                                                 values["norm_region"])
        if region != "ACROSS_CHANNELS":
            raise CheckpointError(f"{where}: layer {layer.name!r} (LRN): expected norm_region "
                                  f"ACROSS_CHANNELS, found {region}")
        for name, want in LRN_OURS.items():
            if not math.isclose(_number(values[name]), want, rel_tol=1e-5):  # float32 α
                raise CheckpointError(f"{where}: layer {layer.name!r} (LRN): expected {name} "
                                      f"{want}, found {values[name]}")
        k = _number(values["k"])
        if not k > 0:
            raise CheckpointError(f"{where}: layer {layer.name!r} (LRN): expected k > 0, "
                                  f"found {values['k']}")
        ks.add(round(k, 6))  # float32 in a caffemodel: 1.0 stays 1.0
    if len(ks) > 1:
        raise CheckpointError(f"{where}: the LRN layers use different k {sorted(ks)}; the "
                              "paper model has one lrn_k")
    return ks.pop() if ks else LRN_DEFAULTS["k"]


def check_convolutions(where: Path, net: list[Layer], model: AlexNetBase) -> None:
    """Each conv layer's kernel, stride, pad and group, where the file states them, are the
    paper model's (the blob shapes cannot tell a stride or a pad)."""
    ours = _weight_layers(model)
    for layer in net:
        conv = ours.get(layer.name)
        given = layer.params.get("convolution_param")
        if not isinstance(conv, nn.Conv2d) or given is None:
            continue
        # caffe.proto ConvolutionParameter: pad 0, stride 1, group 1 unless set.
        found = {"kernel_size": _last(given.get("kernel_size"), None),
                 "stride": _last(given.get("stride"), 1), "pad": _last(given.get("pad"), 0),
                 "group": _last(given.get("group"), 1)}
        want = {"kernel_size": conv.kernel_size[0], "stride": conv.stride[0],
                "pad": conv.padding[0], "group": conv.groups}
        bad = [f"{k} {want[k]}, found {found[k]}" for k in want
               if found[k] is not None and found[k] != want[k]]
        if bad:
            raise CheckpointError(f"{where}: layer {layer.name!r} (convolution): expected "
                                  + "; ".join(bad))


def _last(values: list | None, default: Any) -> Any:
    return values[-1] if values else default


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ---------------------------------------------------------------- the weights

def _weight_layers(model: AlexNetBase) -> dict[str, nn.Conv2d | nn.Linear]:
    mods = dict(model.features.named_children()) | dict(model.classifier.named_children())
    mods["conv1"] = model.conv1  # features.conv1 is zero pad + conv
    return {name: mods[name] for name in CAFFE_LAYERS}


def _blob_tensor(path: Path, layer: str, index: int, blob: Blob,
                 expected: torch.Size) -> torch.Tensor:
    """A blob as a tensor of `expected` shape. The legacy 4-d size pads with leading ones:
    fc weights (1, 1, 4096, 9216), biases (1, 1, 1, 4096)."""
    role = "weights" if index == 0 else "bias"
    shape = tuple(blob.shape)
    while len(shape) > len(expected) and shape[0] == 1:
        shape = shape[1:]
    if shape != tuple(expected):
        raise CheckpointError(f"{path}: layer {layer!r} blob {index} ({role}): expected shape "
                              f"{tuple(expected)}, found {tuple(blob.shape)}")
    if blob.data.size != math.prod(shape):
        raise CheckpointError(f"{path}: layer {layer!r} blob {index} ({role}) declares shape "
                              f"{tuple(blob.shape)} but holds {blob.data.size:,} values: the "
                              "file is corrupt")
    return torch.from_numpy(np.array(blob.data, dtype=np.float32).reshape(shape))


def load_caffe_weights(path: Path, layers: list[Layer], model: AlexNetBase) -> None:
    """Copy conv1..fc8 (blobs 0: weights, 1: bias) from the file's layers into `model`."""
    by_name: dict[str, Layer] = {}
    for layer in layers:
        if layer.blobs:
            by_name.setdefault(layer.name, layer)
    for name, module in _weight_layers(model).items():
        layer = by_name.get(name)
        if layer is None:
            raise CheckpointError(f"{path}: no layer {name!r} with weights; bvlc_alexnet has "
                                  f"{', '.join(CAFFE_LAYERS)}; the file's layers with weights: "
                                  f"{', '.join(by_name) or 'none'}")
        if len(layer.blobs) != 2:
            raise CheckpointError(f"{path}: layer {name!r}: expected 2 blobs (weights, bias), "
                                  f"found {len(layer.blobs)}")
        weight = _blob_tensor(path, name, 0, layer.blobs[0], module.weight.shape)
        bias = _blob_tensor(path, name, 1, layer.blobs[1], module.bias.shape)
        if name == "conv1":
            weight = weight.flip(1)  # (96, 3, 11, 11): Caffe's BGR input channels -> RGB
        with torch.no_grad():
            module.weight.copy_(weight)
            module.bias.copy_(bias)


# ---------------------------------------------------------------- the checkpoint

def caffe_checkpoint(weights_path: str | os.PathLike, *, deploy: str | os.PathLike | None = None,
                     mean: str | os.PathLike | None = None) -> dict[str, Any]:
    """A checkpoint dict (without "format"; `alexnet.weights.checkpoint.save_checkpoint` adds it) of
    the `paper` model holding a Caffe bvlc_alexnet `.caffemodel`'s weights.

    The layer parameters (LRN, convolutions, the order) are read from `deploy` when given,
    else from the caffemodel itself, which stores its whole net. `mean`: a `.binaryproto` mean
    image (3, 256, 256), stored instead of the per-channel mean.

    Preprocessing: Caffe warps each image to 256×256 (examples/imagenet: `convert -resize
    256x256!`) and takes the central 227 crop; our pipeline resizes the shorter side to 256 and
    takes the central 256 square first, so non-square photos are cropped, not squashed.
    """
    weights_path = Path(weights_path)
    mean_image = read_mean(Path(mean)) if mean is not None else None  # (3, 256, 256) RGB
    layers = read_caffemodel(weights_path)
    where, net = (Path(deploy), read_deploy(Path(deploy))) if deploy else (weights_path, layers)
    k = lrn_k(where, net)
    model = caffe_model(lrn_k=k)
    check_order(where, net, model)
    check_convolutions(where, net, model)
    load_caffe_weights(weights_path, layers, model)
    if mean_image is None:
        mean_image = torch.tensor(CAFFE_MEAN_BGR[::-1]).reshape(3, 1, 1)  # RGB
    preprocess = {"resize": MEAN_SIDE, "crop": CROP, "channels": 3, "size": CROP}
    # data.mean "pixel": `eval --data DIR` subtracts that data's own mean image and divides by
    # nothing, as Caffe did; "channel" would divide by the data's per-channel std.
    data = {"source": None, "resize": MEAN_SIDE, "crop": CROP, "channels": 3, "flip": False,
            "mean": "pixel"}
    return {
        "model": {"config": model.config, "state_dict": model.state_dict()},
        "classes": ilsvrc_wnids(),
        "data": {"normalization": {"mean": mean_image.float(), "std": torch.ones(3, 1, 1)},
                 "preprocess": preprocess},
        "config": {"data": data, "model": dict(model.config)},
        "pretrained": {"from": "caffe bvlc_alexnet", "file": str(weights_path),
                       "layers": list(CAFFE_LAYERS), "expected": dict(EXPECTED)},
    }
