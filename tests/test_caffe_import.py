"""`alexnet import caffe`: a caffemodel written here by the protobuf package itself (a schema
declared from caffe.proto's field numbers, so our reader is not checked against itself), in
the `layer` form with `shape` and the legacy `layers` form with num/channels/height/width,
must give the `paper` model Caffe's forward pass, computed here from the raw arrays."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from alexnet.cli import main
from alexnet.data import preprocess_images
from alexnet.data.images import load_image
from alexnet.errors import CheckpointError, DataError
from alexnet.models import create_model
from alexnet.weights.caffe import CAFFE_MEAN_BGR, caffe_checkpoint, read_caffemodel
from alexnet.weights.checkpoint import load_model
from conftest import TEST_DATA_ENV

pytest.importorskip("google.protobuf")
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402

PHOTOS = Path(os.environ.get(TEST_DATA_ENV, "/nonexistent")) / "hymenoptera"  # conftest

# bvlc_alexnet: (name, type, V1 enum, weight shape, convolution_param) in train_val order.
CONV = {"conv1": dict(kernel_size=11, stride=4), "conv2": dict(kernel_size=5, pad=2, group=2),
        "conv3": dict(kernel_size=3, pad=1), "conv4": dict(kernel_size=3, pad=1, group=2),
        "conv5": dict(kernel_size=3, pad=1, group=2)}
SHAPES = {"conv1": (96, 3, 11, 11), "conv2": (256, 48, 5, 5), "conv3": (384, 256, 3, 3),
          "conv4": (384, 192, 3, 3), "conv5": (256, 192, 3, 3), "fc6": (4096, 9216),
          "fc7": (4096, 4096), "fc8": (1000, 4096)}
V1 = {"Data": 5, "Convolution": 4, "ReLU": 18, "LRN": 15, "Pooling": 17, "InnerProduct": 14,
      "Dropout": 6, "Softmax": 20}  # caffe.proto V1LayerParameter.LayerType
NET = [("data", "Data"), ("conv1", "Convolution"), ("relu1", "ReLU"), ("norm1", "LRN"),
       ("pool1", "Pooling"), ("conv2", "Convolution"), ("relu2", "ReLU"), ("norm2", "LRN"),
       ("pool2", "Pooling"), ("conv3", "Convolution"), ("relu3", "ReLU"),
       ("conv4", "Convolution"), ("relu4", "ReLU"), ("conv5", "Convolution"), ("relu5", "ReLU"),
       ("pool5", "Pooling"), ("fc6", "InnerProduct"), ("relu6", "ReLU"), ("drop6", "Dropout"),
       ("fc7", "InnerProduct"), ("relu7", "ReLU"), ("drop7", "Dropout"),
       ("fc8", "InnerProduct"), ("prob", "Softmax")]


# ---------------------------------------------------------------- an independent encoder

def caffe_schema(packed: bool) -> dict[str, type]:
    """Message classes for the caffe.proto messages the import reads (field numbers from
    BVLC/caffe src/caffe/proto/caffe.proto); `packed=False` writes unpacked blob data."""
    T = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(name=f"caffe_{packed}.proto", package="caffe",
                                           syntax="proto2")

    def message(name: str, *specs: tuple) -> None:
        m = f.message_type.add(name=name)
        for fname, number, ftype, repeated, *rest in specs:
            field = m.field.add(name=fname, number=number, type=ftype,
                                label=T.LABEL_REPEATED if repeated else T.LABEL_OPTIONAL)
            if ftype == T.TYPE_MESSAGE:
                field.type_name = f".caffe.{rest[0]}"
            elif rest:
                field.options.packed = rest[0]

    message("BlobShape", ("dim", 1, T.TYPE_INT64, True, True))
    message("BlobProto", ("num", 1, T.TYPE_INT32, False), ("channels", 2, T.TYPE_INT32, False),
            ("height", 3, T.TYPE_INT32, False), ("width", 4, T.TYPE_INT32, False),
            ("data", 5, T.TYPE_FLOAT, True, packed), ("shape", 7, T.TYPE_MESSAGE, False,
                                                      "BlobShape"))
    message("ConvolutionParameter", ("num_output", 1, T.TYPE_UINT32, False),
            ("pad", 3, T.TYPE_UINT32, True), ("kernel_size", 4, T.TYPE_UINT32, True),
            ("group", 5, T.TYPE_UINT32, False), ("stride", 6, T.TYPE_UINT32, True))
    message("LRNParameter", ("local_size", 1, T.TYPE_UINT32, False),
            ("alpha", 2, T.TYPE_FLOAT, False), ("beta", 3, T.TYPE_FLOAT, False),
            ("k", 5, T.TYPE_FLOAT, False))
    message("LayerParameter", ("name", 1, T.TYPE_STRING, False),
            ("type", 2, T.TYPE_STRING, False), ("blobs", 7, T.TYPE_MESSAGE, True, "BlobProto"),
            ("convolution_param", 106, T.TYPE_MESSAGE, False, "ConvolutionParameter"),
            ("lrn_param", 118, T.TYPE_MESSAGE, False, "LRNParameter"))
    # V1's `type` is an enum: on the wire a varint, as this int32.
    message("V1LayerParameter", ("name", 4, T.TYPE_STRING, False),
            ("type", 5, T.TYPE_INT32, False), ("blobs", 6, T.TYPE_MESSAGE, True, "BlobProto"),
            ("convolution_param", 10, T.TYPE_MESSAGE, False, "ConvolutionParameter"),
            ("lrn_param", 18, T.TYPE_MESSAGE, False, "LRNParameter"))
    message("NetParameter", ("name", 1, T.TYPE_STRING, False),
            ("layers", 2, T.TYPE_MESSAGE, True, "V1LayerParameter"),
            ("layer", 100, T.TYPE_MESSAGE, True, "LayerParameter"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return {m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{m.name}"))
            for m in f.message_type}


PACKED, UNPACKED = caffe_schema(True), caffe_schema(False)


@pytest.fixture(scope="module")
def weights() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random bvlc_alexnet weights in Caffe's layout (conv1 on BGR). conv1 is scaled so that
    its outputs (~40 on inputs ±100) make the LRN term matter (α/n·Σx² ~ 0.1), the others
    keep the activations' scale (He)."""
    gen = torch.Generator().manual_seed(0)
    out = {}
    for name, shape in SHAPES.items():
        std = 0.03 if name == "conv1" else (2.0 / np.prod(shape[1:])) ** 0.5
        w = torch.randn(shape, generator=gen) * std
        out[name] = (w.numpy(), (torch.randn(shape[0], generator=gen) * 0.1).numpy())
    return out


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes(out + bytes([n]))


@pytest.fixture(scope="module")
def blob_data(weights) -> dict[tuple[str, int], bytes]:
    """Each blob's data alone, serialised once by protobuf; both forms parse it back and add
    their size fields. Filling protobuf's repeated field value by value takes seconds for 61M
    floats, so protobuf parses a packed run made from the raw bytes instead (and must find
    all of it in `data`)."""
    out = {}
    for name, pair in weights.items():
        for i, array in enumerate(pair):
            raw = array.astype("<f4").tobytes()
            blob = PACKED["BlobProto"]()
            blob.MergeFromString(bytes([5 << 3 | 2]) + varint(len(raw)) + raw)
            assert len(blob.data) == array.size and blob.data[-1] == array.flat[-1]
            out[name, i] = blob.SerializeToString()
    return out


def write_net(path: Path, blob_data: dict, *, legacy: bool = False, packed: bool = True,
              names=None, shapes: dict | None = None, net=NET) -> Path:
    """A caffemodel: `layer` messages with `shape`, or `legacy` V1 `layers` with
    num/channels/height/width; blob data `packed` or not. `names`: the layers that get
    weights (the others are there without blobs); `shapes`: sizes to declare instead."""
    schema = PACKED if packed else UNPACKED
    msg = schema["NetParameter"](name="AlexNet")
    for name, kind in net:
        layer = msg.layers.add(name=name, type=V1[kind]) if legacy else \
            msg.layer.add(name=name, type=kind)
        if name in CONV:
            conv = layer.convolution_param
            conv.num_output = SHAPES[name][0]
            for key, value in CONV[name].items():
                if key == "group":  # optional; pad, kernel_size and stride are repeated
                    conv.group = value
                else:
                    getattr(conv, key).append(value)
        if kind == "LRN":
            layer.lrn_param.local_size, layer.lrn_param.alpha = 5, 1e-4
            layer.lrn_param.beta = 0.75
        if name in SHAPES and (names is None or name in names):
            shape = (shapes or {}).get(name, SHAPES[name])
            for i, size in enumerate((shape, shape[:1])):
                blob = layer.blobs.add()
                blob.MergeFromString(blob_data[name, i])
                if legacy:  # e.g. fc6 (1, 1, 4096, 9216), a bias (1, 1, 1, 4096)
                    four = (1,) * (4 - len(size)) + tuple(size)
                    blob.num, blob.channels, blob.height, blob.width = four
                else:
                    blob.shape.dim.extend(size)
    path.write_bytes(msg.SerializeToString())
    return path


@pytest.fixture(scope="module")
def caffemodel(tmp_path_factory, blob_data) -> Path:
    return write_net(tmp_path_factory.mktemp("caffe") / "bvlc_alexnet.caffemodel", blob_data)


@pytest.fixture(scope="module")
def imported(caffemodel) -> dict:
    return caffe_checkpoint(caffemodel)


@pytest.fixture(scope="module")
def caffe_net(imported) -> torch.nn.Module:
    return load_model({**imported, "format": "alexnet-checkpoint/1"})[0]


# ---------------------------------------------------------------- Caffe's forward, by hand

def caffe_lrn(x: torch.Tensor, n: int = 5, alpha: float = 1e-4, beta: float = 0.75,
              k: float = 1.0) -> torch.Tensor:
    """lrn_layer.cpp: x / (k + α/n Σ_{c-2..c+2} x²)^β over ALL channels (zero beyond)."""
    sq = F.pad(x * x, (0, 0, 0, 0, n // 2, n // 2))  # channels padded by 2 on both sides
    window = sum(sq[:, i:i + x.shape[1]] for i in range(n))
    return x / (k + alpha / n * window) ** beta


def caffe_conv(x: torch.Tensor, w: np.ndarray, b: np.ndarray, *, stride: int = 1, pad: int = 0,
               group: int = 1) -> torch.Tensor:
    """conv_layer: group g convolves input channels [g·C/G, (g+1)·C/G) with output filters
    [g·O/G, (g+1)·O/G)."""
    w, b = torch.from_numpy(w).double(), torch.from_numpy(b).double()
    ci, co = x.shape[1] // group, w.shape[0] // group
    return torch.cat([F.conv2d(x[:, g * ci:(g + 1) * ci], w[g * co:(g + 1) * co],
                               b[g * co:(g + 1) * co], stride=stride, padding=pad)
                      for g in range(group)], 1)


def caffe_forward(weights: dict, x_bgr: torch.Tensor) -> torch.Tensor:
    """bvlc_alexnet's deploy net on (B, 3, 227, 227) BGR, mean subtracted, in float64."""
    x = x_bgr.double()
    x = F.max_pool2d(caffe_lrn(F.relu(caffe_conv(x, *weights["conv1"], stride=4))), 3, 2)
    x = F.max_pool2d(caffe_lrn(F.relu(caffe_conv(x, *weights["conv2"], pad=2, group=2))), 3, 2)
    x = F.relu(caffe_conv(x, *weights["conv3"], pad=1))
    x = F.relu(caffe_conv(x, *weights["conv4"], pad=1, group=2))
    x = F.max_pool2d(F.relu(caffe_conv(x, *weights["conv5"], pad=1, group=2)), 3, 2)
    assert x.shape[1:] == (256, 6, 6)
    x = x.reshape(len(x), -1)  # inner_product: the (C, H, W) blob read row-major, 9216
    for name in ("fc6", "fc7", "fc8"):
        w, b = (torch.from_numpy(a).double() for a in weights[name])
        x = x @ w.T + b
        x = F.relu(x) if name != "fc8" else x  # dropout: identity at test
    return x


def test_the_imported_model_is_caffes_network(caffe_net, weights):
    model = caffe_net
    config = model.config
    assert (config["image_size"], config["lrn_k"], config["lrn_alpha_over_n"],
            config["lrn_per_tower"], config["dropout_scaling"]) == (227, 1.0, True, False,
                                                                    "train")
    gen = torch.Generator().manual_seed(1)
    rgb = torch.rand(2, 3, 227, 227, generator=gen) * 255 - torch.tensor(
        CAFFE_MEAN_BGR[::-1]).reshape(3, 1, 1)
    with torch.no_grad():
        ours = model(rgb).double()
    ref = caffe_forward(weights, rgb.flip(1))  # Caffe sees BGR
    assert ref.abs().max() > 1.0  # a forward pass that carries signal
    assert (ours - ref).abs().max() <= 1e-4 * ref.abs().max()
    # the test's LRN term is large enough to tell Caffe's LRN from §3.3's k=2 in each tower
    paper_lrn = copy.deepcopy(model)
    for lrn in (paper_lrn.features.lrn1, paper_lrn.features.lrn2):
        lrn.k, lrn.groups = 2.0, 2
    with torch.no_grad():
        assert (paper_lrn(rgb).double() - ref).abs().max() > 1e-2 * ref.abs().max()


def test_the_checkpoint_layout(imported, caffemodel):
    data = imported["data"]
    assert torch.allclose(data["normalization"]["mean"].flatten(),
                          torch.tensor([122.6789, 116.6688, 104.0070]), atol=1e-3)
    assert torch.equal(data["normalization"]["std"], torch.ones(3, 1, 1))
    assert data["preprocess"] == {"resize": 256, "crop": 227, "channels": 3, "size": 227}
    assert len(imported["classes"]) == 1000 and imported["classes"] == sorted(imported["classes"])
    assert imported["classes"][0] == "n01440764"  # tench: Caffe's label 0
    assert imported["config"]["data"]["crop"] == 227
    assert imported["config"]["model"] == imported["model"]["config"]
    assert imported["pretrained"]["file"] == str(caffemodel)
    assert imported["pretrained"]["expected"]["top1_err"] == 0.429
    assert "format" not in imported


def test_the_legacy_layers_form_gives_the_same_weights(tmp_path, blob_data, imported):
    legacy = write_net(tmp_path / "v1.caffemodel", blob_data, legacy=True)
    state = caffe_checkpoint(legacy)["model"]["state_dict"]
    assert state.keys() == imported["model"]["state_dict"].keys()
    assert all(torch.equal(state[k], v) for k, v in imported["model"]["state_dict"].items())


def test_unpacked_blob_data_reads_the_same(tmp_path, blob_data, weights):
    path = write_net(tmp_path / "unpacked.caffemodel", blob_data, legacy=True, packed=False,
                     names={"conv1", "conv2"})
    layers = {layer.name: layer for layer in read_caffemodel(path)}
    for name in ("conv1", "conv2"):
        w, b = layers[name].blobs
        assert w.shape == SHAPES[name] and b.shape == (1, 1, 1, SHAPES[name][0])
        assert np.array_equal(w.data, weights[name][0].reshape(-1))
        assert np.array_equal(b.data, weights[name][1])


def test_224_input_is_the_227_net_on_a_zero_padded_crop(imported, caffe_net):
    """Our default 224 crop pads 3 px of zeros (the mean, after subtraction) on the right and
    bottom: the same weights, conv1 then sees what Caffe's net sees on that padded image."""
    photos = sorted(PHOTOS.glob("val/*/*.jpg"))[:2] if PHOTOS.is_dir() else []
    images = [load_image(p) for p in photos] or [
        torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8, generator=torch.Generator()
                      .manual_seed(2))]
    model227 = caffe_net
    model224 = create_model(**{**model227.config, "image_size": 224}).eval()
    model224.load_state_dict(model227.state_dict())  # the same shapes: pool5 is 6×6 at both
    norm = imported["data"]["normalization"]
    x224 = preprocess_images(images, norm, {"resize": 256, "crop": 224, "channels": 3})
    with torch.no_grad():
        assert torch.allclose(model224(x224), model227(F.pad(x224, (0, 3, 0, 3))), atol=1e-4,
                              rtol=1e-4)


# ---------------------------------------------------------------- one clear error each

def test_a_truncated_file_is_one_error(tmp_path, blob_data):
    net = write_net(tmp_path / "net.caffemodel", blob_data, names={"conv1", "conv2"},
                    net=NET[:6])  # data, conv1, relu1, norm1, pool1, conv2
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(net.read_bytes()[:-1000])
    with pytest.raises(CheckpointError, match=r"cut.caffemodel .*truncated.*layer 'conv2'"):
        caffe_checkpoint(cut)


def test_a_file_that_is_not_a_caffemodel_is_one_error(tmp_path):
    jpeg = tmp_path / "photo.caffemodel"
    Image.new("RGB", (16, 16), (200, 30, 30)).save(jpeg, format="JPEG")
    text = tmp_path / "deploy.caffemodel"
    text.write_text('name: "AlexNet"\nlayer { name: "conv1" type: "Convolution" }\n')
    for path in (jpeg, text):
        with pytest.raises(CheckpointError, match=rf"{path.name} .*not a (readable|trained)"):
            caffe_checkpoint(path)


def test_a_missing_layer_or_a_wrong_shape_names_it(tmp_path, blob_data):
    convs = write_net(tmp_path / "convs.caffemodel", blob_data,
                      names={"conv1", "conv2", "conv3", "conv4", "conv5"})
    with pytest.raises(CheckpointError, match=r"convs.caffemodel: no layer 'fc6' with weights"):
        caffe_checkpoint(convs)
    # conv2 without groups: (256, 96, 5, 5) weights (the data no longer fits it either)
    bad = write_net(tmp_path / "bad.caffemodel", blob_data, names={"conv1", "conv2"},
                    shapes={"conv2": (256, 96, 5, 5)})
    with pytest.raises(CheckpointError, match=r"bad.caffemodel: layer 'conv2' blob 0 \(weights\)"
                                              r": expected shape \(256, 48, 5, 5\), found "
                                              r"\(256, 96, 5, 5\)"):
        caffe_checkpoint(bad)


def test_caffenet_order_and_foreign_layer_parameters_are_refused(tmp_path, blob_data):
    small = write_net(tmp_path / "conv1.caffemodel", blob_data, names={"conv1"})
    swapped = [("norm1", "LRN") if n == "pool1" else ("pool1", "Pooling") if n == "norm1"
               else (n, k) for n, k in NET]  # bvlc_reference_caffenet: pool, then norm
    caffenet = write_net(tmp_path / "caffenet.caffemodel", blob_data, names={"conv1"},
                         net=swapped)
    with pytest.raises(CheckpointError, match="not bvlc_alexnet's.*pools before it normalises"):
        caffe_checkpoint(caffenet)
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(DEPLOY.replace("group: 2", "group: 1", 1))
    with pytest.raises(CheckpointError, match=r"deploy.prototxt: layer 'conv2' \(convolution\): "
                                              r"expected group 2, found 1"):
        caffe_checkpoint(small, deploy=deploy)
    deploy.write_text(DEPLOY.replace("beta: 0.75", "beta: 0.5", 1))
    with pytest.raises(CheckpointError, match=r"layer 'norm1' \(LRN\): expected beta 0.75, "
                                              r"found 0.5"):
        caffe_checkpoint(small, deploy=deploy)


def test_a_bad_mean_file_is_one_data_error(tmp_path, caffemodel):
    mean = tmp_path / "mean.binaryproto"
    blob = PACKED["BlobProto"](num=1, channels=3, height=8, width=8)
    blob.data.extend([0.0] * 192)
    mean.write_bytes(blob.SerializeToString())
    with pytest.raises(DataError, match=r"mean.binaryproto: expected a 1x3x256x256 BGR mean"):
        caffe_checkpoint(caffemodel, mean=mean)


# ---------------------------------------------------------------- the command, end to end

DEPLOY = "\n".join(
    ['name: "AlexNet"', 'layer { name: "data" type: "Input" top: "data"',
      '  input_param { shape: { dim: 10 dim: 3 dim: 227 dim: 227 } } }']
    + [f'layer {{ name: "{n}" type: "{k}"  # bvlc_alexnet deploy\n'
       + (f'  convolution_param {{ num_output: {SHAPES[n][0]} '
          + " ".join(f"{a}: {v}" for a, v in CONV[n].items()) + " }\n" if n in CONV else "")
       + ('  lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }\n' if k == "LRN" else "")
       + '}' for n, k in NET[1:]])


def test_the_command_writes_a_checkpoint_every_command_reads(tmp_path, caffemodel, capsys):
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(DEPLOY)
    mean_bgr = np.random.default_rng(3).uniform(0, 255, (1, 3, 256, 256)).astype(np.float32)
    blob = PACKED["BlobProto"]()
    blob.shape.dim.extend(mean_bgr.shape)
    blob.data.extend(mean_bgr.reshape(-1).tolist())
    (tmp_path / "mean.binaryproto").write_bytes(blob.SerializeToString())
    out = tmp_path / "paper-caffe.pt"
    assert main(["import", "caffe", str(deploy), str(caffemodel), "--out", str(out),
                 "--mean", str(tmp_path / "mean.binaryproto")]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "conv1 conv2 conv3 conv4 conv5 fc6 fc7 fc8" in printed
    assert f"alexnet eval {out} --data" in printed and "42.9%" in printed
    model, state = load_model(out)
    assert model.config["lrn_k"] == 1.0 and state["config"]["data"]["mean"] == "pixel"
    assert torch.equal(state["data"]["normalization"]["mean"],
                       torch.from_numpy(mean_bgr[0, ::-1].copy()))  # RGB

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (240, 320, 3), dtype=np.uint8)
                    ).save(photo)
    assert main(["predict", str(out), str(photo), "--topk", "3", "--json"]) == 0
    [answer] = json.loads(capsys.readouterr().out)
    assert [p["rank"] for p in answer["predictions"]] == [1, 2, 3]
    assert all(isinstance(p["name"], str) and p["name"] for p in answer["predictions"])

    assert main(["import", "caffe", str(caffemodel), "--out", str(caffemodel)]) == 2
    assert "is the input file" in capsys.readouterr().err


def test_checkpoints_without_lrn_k_load_with_the_papers_k():
    model = create_model("paper", num_classes=3, image_size=64)
    config = {k: v for k, v in model.config.items() if k != "lrn_k"}
    state = {"format": "alexnet-checkpoint/1",
             "model": {"config": config, "state_dict": model.state_dict()}}
    loaded, _ = load_model(state)
    assert loaded.config["lrn_k"] == 2.0 and loaded.features.lrn1.k == 2.0
