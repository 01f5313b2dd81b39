"""Just enough of Caffe's file formats to import a network: the protobuf wire format of
`.caffemodel` / `.binaryproto` files and the text format of `.prototxt` files, for the fields
listed below. No Caffe and no protobuf package needed.

The fields read, with their numbers in caffe.proto (BVLC/caffe, src/caffe/proto/caffe.proto):

    NetParameter           layer = 100 (LayerParameter), layers = 2 (V1LayerParameter, the
                           format before 2015, which the BVLC model zoo's older files use)
    LayerParameter         name = 1, type = 2 (string), blobs = 7, convolution_param = 106,
                           lrn_param = 118
    V1LayerParameter       name = 4, type = 5 (enum LayerType), blobs = 6,
                           convolution_param = 10, lrn_param = 18
    BlobProto              num = 1, channels = 2, height = 3, width = 4 (the legacy 4-d size),
                           data = 5 (packed float; unpacked accepted), shape = 7,
                           double_data = 8 (packed double)
    BlobShape              dim = 1 (packed int64)
    ConvolutionParameter   pad = 3, kernel_size = 4, group = 5, stride = 6
    LRNParameter           local_size = 1, alpha = 2, beta = 3, norm_region = 4, k = 5

Wire format (protobuf encoding): each field is a varint key (number << 3 | wire type), then a
varint (type 0), 8 bytes (1), a varint length and that many bytes (2: strings, messages,
packed repeated fields) or 4 bytes (5). Every number is little-endian.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

# V1LayerParameter.LayerType values of the layers the import looks at (caffe.proto).
V1_TYPES = {4: "CONVOLUTION", 14: "INNER_PRODUCT", 15: "LRN", 17: "POOLING"}
# Per message: field number -> (name, kind) of the parameters kept, kind "int" or "float".
CONV_FIELDS = {3: ("pad", "int"), 4: ("kernel_size", "int"), 5: ("group", "int"),
               6: ("stride", "int")}
LRN_FIELDS = {1: ("local_size", "int"), 2: ("alpha", "float"), 3: ("beta", "float"),
              4: ("norm_region", "int"), 5: ("k", "float")}
# (name, type, blobs, convolution_param, lrn_param) field numbers of the two layer messages.
LAYER_FIELDS = {"layer": (1, 2, 7, 106, 118), "layers": (4, 5, 6, 10, 18)}
NET_LAYER, NET_LAYERS_V1 = 100, 2
UNPACKED_DATA_KEY = 5 << 3 | 5  # BlobProto.data, one float (wire type 5) per field


class WireError(ValueError):
    """The bytes are not the protobuf message they should be (truncated or another file)."""


@dataclass
class Blob:
    """One BlobProto: its size as stored (`shape.dim`, or the legacy (num, channels, height,
    width)) and its values, float32 (N,)."""

    shape: tuple[int, ...]
    data: np.ndarray


@dataclass
class Layer:
    """One layer of a net: `type` in canonical form (upper case, no underscores: CONVOLUTION,
    INNERPRODUCT, LRN, POOLING), so both formats' names compare equal; `params`:
    {"convolution_param": {"pad": [2], ...}, "lrn_param": {"k": [1.0], ...}} as present."""

    name: str
    type: str
    blobs: list[Blob] = field(default_factory=list)
    params: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def canonical_type(name: str) -> str:
    return name.upper().replace("_", "")


# ---------------------------------------------------------------- the wire format

def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """The varint at `pos` and the position after it."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError(f"the data ends inside a number at byte {pos}")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise WireError(f"a number longer than 10 bytes at byte {pos}")


def _field_at(buf: memoryview, pos: int) -> tuple[int, int, int | memoryview, int]:
    """(field number, wire type, value, end) of the field starting at `pos`: the value is an
    int for a varint, the raw bytes otherwise (fixed 8 or 4 bytes, or length-delimited)."""
    key, pos = _varint(buf, pos)
    number, wire = key >> 3, key & 7
    if number == 0:
        raise WireError(f"field number 0 at byte {pos:,}")
    if wire == 0:
        value, end = _varint(buf, pos)
        return number, wire, value, end
    if wire == 2:
        size, pos = _varint(buf, pos)
    elif wire in (1, 5):
        size = 8 if wire == 1 else 4
    else:
        raise WireError(f"wire type {wire} (field {number}) at byte {pos:,}: not a message "
                        "this reader knows")
    if pos + size > len(buf):
        raise WireError(f"field {number} at byte {pos:,} needs {size:,} bytes, "
                        f"{len(buf) - pos:,} are left: the data is truncated")
    return number, wire, buf[pos:pos + size], pos + size


def fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of each field of one message, in order."""
    pos = 0
    while pos < len(buf):
        number, wire, value, pos = _field_at(buf, pos)
        yield number, wire, value


def _text(value: int | memoryview) -> str:
    if isinstance(value, int):
        raise WireError("a text field holds a number")
    return bytes(value).decode("utf-8", errors="replace")


def _ints(wire: int, value: int | memoryview) -> list[int]:
    """A repeated integer field's values: one varint, or a packed run of them."""
    if wire == 0:
        return [int(value)]
    if wire != 2:
        raise WireError(f"an integer field with wire type {wire}")
    run, pos, out = memoryview(value), 0, []
    while pos < len(run):
        v, pos = _varint(run, pos)
        out.append(v)
    return out


def _floats(wire: int, value: int | memoryview, dtype: str = "<f4") -> np.ndarray:
    """A repeated float/double field's values: one fixed value, or a packed run of them."""
    width = np.dtype(dtype).itemsize
    if wire not in (2, 5 if width == 4 else 1) or isinstance(value, int):
        raise WireError(f"a {np.dtype(dtype).name} field with wire type {wire}")
    if len(value) % width:
        raise WireError(f"{len(value):,} bytes of {np.dtype(dtype).name} values: not a "
                        f"multiple of {width}")
    return np.frombuffer(value, dtype=dtype)


def read_blob(buf: memoryview | bytes) -> Blob:
    """A BlobProto: shape (or num/channels/height/width) and float data (or double_data)."""
    dims: list[int] = []
    legacy = {1: 0, 2: 0, 3: 0, 4: 0}  # num, channels, height, width
    chunks: list[np.ndarray] = []
    buf, pos = memoryview(buf), 0
    while pos < len(buf):
        if buf[pos] == UNPACKED_DATA_KEY and len(buf) - pos >= 5:
            values, pos = _unpacked_floats(buf, pos)
            chunks.append(values)
            continue
        number, wire, value, pos = _field_at(buf, pos)
        if number == 7:  # shape: BlobShape
            for n, w, v in fields(_message(wire, value)):
                if n == 1:
                    dims.extend(_ints(w, v))
        elif number in legacy:
            legacy[number] = int(value) if wire == 0 else _ints(wire, value)[-1]
        elif number == 5:
            chunks.append(_floats(wire, value))
        elif number == 8:
            chunks.append(_floats(wire, value, "<f8").astype(np.float32))
    shape = tuple(dims) if dims else (tuple(legacy.values()) if any(legacy.values()) else ())
    data = chunks[0] if len(chunks) == 1 else (
        np.concatenate(chunks) if chunks else np.zeros(0, np.float32))
    return Blob(shape=tuple(int(d) for d in shape), data=data.astype(np.float32, copy=False))


def _unpacked_floats(buf: memoryview, pos: int) -> tuple[np.ndarray, int]:
    """The run of unpacked `data` floats at `pos` (key byte, 4 value bytes, key byte, ...),
    read at once: one field per value would take a minute for AlexNet's 61M weights."""
    rows = (len(buf) - pos) // 5
    table = np.frombuffer(buf, np.uint8, count=rows * 5, offset=pos).reshape(rows, 5)
    breaks = np.flatnonzero(table[:, 0] != UNPACKED_DATA_KEY)
    run = int(breaks[0]) if breaks.size else rows
    return np.ascontiguousarray(table[:run, 1:]).view("<f4").reshape(-1), pos + 5 * run


def _message(wire: int, value: int | memoryview) -> memoryview:
    if wire != 2 or isinstance(value, int):
        raise WireError(f"a message field with wire type {wire}")
    return value


def _params(buf: memoryview, table: dict[int, tuple[str, str]]) -> dict[str, list[float]]:
    """The fields of a parameter message that `table` names, each as a list of values."""
    out: dict[str, list[float]] = {}
    for number, wire, value in fields(buf):
        if number in table:
            name, kind = table[number]
            got = _ints(wire, value) if kind == "int" else _floats(wire, value).tolist()
            out.setdefault(name, []).extend(got)
    return out


def _read_layer(buf: memoryview, form: str) -> Layer:
    name_f, type_f, blobs_f, conv_f, lrn_f = LAYER_FIELDS[form]
    layer = Layer(name="", type="")
    for number, wire, value in fields(buf):
        if number == name_f:
            layer.name = _text(value)
        elif number == type_f:
            layer.type = canonical_type(
                V1_TYPES.get(int(value), f"V1 type {value}") if wire == 0 else _text(value))
        elif number == blobs_f:
            try:
                layer.blobs.append(read_blob(_message(wire, value)))
            except WireError as err:
                raise WireError(f"blob {len(layer.blobs)}: {err}") from None
        elif number == conv_f:
            layer.params["convolution_param"] = _params(_message(wire, value), CONV_FIELDS)
        elif number == lrn_f:
            layer.params["lrn_param"] = _params(_message(wire, value), LRN_FIELDS)
    return layer


def _partial_name(buf: memoryview, form: str) -> str:
    """The name of a layer whose bytes are cut short, when its start survived."""
    try:
        for number, _, value in fields(buf):
            if number == LAYER_FIELDS[form][0]:
                return _text(value)
    except WireError:
        pass
    return "?"


def read_net(data: bytes | memoryview) -> list[Layer]:
    """The layers of a NetParameter (a `.caffemodel`), in file order, from both `layer` and
    `layers` messages. Raises `WireError` naming the layer where the bytes go wrong."""
    buf = memoryview(data)
    forms = {NET_LAYER: "layer", NET_LAYERS_V1: "layers"}
    layers: list[Layer] = []
    pos = 0
    while pos < len(buf):
        try:
            number, wire, value, end = _field_at(buf, pos)
        except WireError as err:
            raise WireError(_cut_layer(buf, pos, forms) or str(err)) from None
        if number in forms:
            form = forms[number]
            try:
                layers.append(_read_layer(_message(wire, value), form))
            except WireError as err:
                name = _partial_name(_message(wire, value), form)
                raise WireError(f"layer {name!r} ({form}): {err}") from None
        pos = end
    return layers


def _cut_layer(buf: memoryview, pos: int, forms: dict[int, str]) -> str:
    """Where the data ends, when the field at `pos` that runs past the end is a layer."""
    try:
        key, start = _varint(buf, pos)
        if key >> 3 in forms and key & 7 == 2:
            size, body = _varint(buf, start)
            name = _partial_name(buf[body:], forms[key >> 3])
            return (f"the data ends inside layer {name!r}, which needs {size:,} bytes from "
                    f"byte {body:,}; {len(buf) - body:,} are left")
    except WireError:
        pass
    return ""


# ---------------------------------------------------------------- the text format (.prototxt)

_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|[{}:;,\[\]<>]'
                    r'|[^\s{}:;,\[\]<>"\'#]+')


def parse_text(text: str) -> list[tuple[str, object]]:
    """A protobuf text-format message as (key, value) pairs, in order; a nested message is
    itself such a list; scalars are int, float or str (quotes removed, enum names kept)."""
    tokens = [t for t in _TOKEN.findall(text) if t.strip() and not t.startswith("#")
              and t not in (";", ",")]
    pos = 0

    def message(closing: str | None) -> list[tuple[str, object]]:
        nonlocal pos
        out: list[tuple[str, object]] = []
        while pos < len(tokens):
            key = tokens[pos]
            if key == closing:
                pos += 1
                return out
            if key in "{}<>:[]":
                raise WireError(f"unexpected {key!r} in the text (token {pos})")
            pos += 1
            if pos < len(tokens) and tokens[pos] == ":":
                pos += 1
            if pos >= len(tokens) or tokens[pos] in ("}", ">", "]", ":"):
                raise WireError(f"no value after {key!r} (token {pos})")
            if tokens[pos] in ("{", "<"):
                pos += 1
                out.append((key, message("}" if tokens[pos - 1] == "{" else ">")))
            elif tokens[pos] == "[":  # a repeated scalar as a list: dim: [10, 3, 227, 227]
                end = tokens.index("]", pos) if "]" in tokens[pos:] else len(tokens)
                out.extend((key, _scalar(t)) for t in tokens[pos + 1:end])
                pos = end + 1
            else:
                out.append((key, _scalar(tokens[pos])))
                pos += 1
        if closing is not None:
            raise WireError("the text ends inside a message: a closing brace is missing")
        return out

    return message(None)


def _scalar(token: str) -> int | float | str:
    if token[0] in "\"'":
        return token[1:-1]
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        return token  # an enum name or true/false


def read_prototxt(text: str) -> list[Layer]:
    """The layers of a text NetParameter (a deploy `.prototxt`), names, types and the
    convolution / LRN parameters only (no blobs)."""
    names = {"convolution_param": CONV_FIELDS, "lrn_param": LRN_FIELDS}
    layers = []
    for key, value in parse_text(text):
        if key not in ("layer", "layers") or not isinstance(value, list):
            continue
        layer = Layer(name="", type="")
        for k, v in value:
            if k == "name":
                layer.name = str(v)
            elif k == "type":
                layer.type = canonical_type(str(v))
            elif k in names and isinstance(v, list):
                known = {n for n, _ in names[k].values()}
                params: dict[str, list] = {}
                for pk, pv in v:
                    if pk in known:
                        params.setdefault(pk, []).append(pv)
                layer.params[k] = params
        layers.append(layer)
    return layers
