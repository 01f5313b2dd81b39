"""CIFAR-10's python batches (`data_batch_1` ... `test_batch`, `batches.meta`) read without
unpickling them.

The files are pickles of a dict holding a uint8 numpy array and lists of numbers and strings.
`pickle.load` would run whatever callables a planted file names; here the pickle's opcodes are
decoded by `pickletools.genops` (which executes nothing) into plain dicts, lists, numbers and
strings. The only callables accepted are the ones numpy's array pickle names
(`numpy.core.multiarray._reconstruct` and `scalar`, `numpy.ndarray`, `numpy.dtype`, and
`_codecs.encode` for bytes under protocol 2); they are never called, only read as a
description of the array.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alexnet.errors import DataError

RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray",
                                                           "_reconstruct")}
SCALAR = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}
ALLOWED = RECONSTRUCT | SCALAR | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
DTYPES = {"u1", "i1", "i2", "i4", "i8", "u2", "u4", "u8"}  # what the batches hold (labels, data)


@dataclass
class _Call:
    """`func(*args)` as the pickle describes it (REDUCE), with BUILD's state; never called."""

    func: tuple[str, str]
    args: tuple
    state: Any = field(default=None)


class _Bad(ValueError):
    pass


def _decode(data: bytes) -> Any:
    """The object a pickle describes, built from data opcodes only."""
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        if not marks:
            raise _Bad("MARK missing")
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    def pop() -> Any:
        if not stack:
            raise _Bad("stack underflow")
        return stack.pop()

    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            if len(stack) != 1:
                raise _Bad("STOP with a malformed stack")
            return stack[0]
        if name == "MARK":
            marks.append(len(stack))
        elif name in ("EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE"):
            stack.append({"EMPTY_DICT": {}, "EMPTY_LIST": [], "EMPTY_TUPLE": ()}[name])
        elif name == "DICT":
            items = pop_mark()
            stack.append(dict(zip(items[::2], items[1::2], strict=True)))
        elif name == "LIST":
            stack.append(pop_mark())
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            if len(stack) < n:
                raise _Bad("stack underflow")
            items = stack[-n:]
            del stack[-n:]
            stack.append(tuple(items))
        elif name in ("SETITEM", "SETITEMS"):
            items = [pop(), pop()][::-1] if name == "SETITEM" else pop_mark()
            target = stack[-1] if stack else None
            if not isinstance(target, dict) or len(items) % 2:
                raise _Bad(f"{name} on a {type(target).__name__}")
            for key, value in zip(items[::2], items[1::2], strict=True):
                if not isinstance(key, str | bytes | int):
                    raise _Bad(f"dict key of type {type(key).__name__}")
                target[key] = value
        elif name in ("APPEND", "APPENDS"):
            items = [pop()] if name == "APPEND" else pop_mark()
            if not stack or not isinstance(stack[-1], list):
                raise _Bad(f"{name} on a non-list")
            stack[-1].extend(items)
        elif name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4",
                      "FLOAT", "BINFLOAT", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
                      "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8"):
            stack.append(arg)
        elif name in ("STRING", "BINSTRING", "SHORT_BINSTRING"):  # python 2 str: latin-1
            stack.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = stack[-1] if stack else None
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1] if stack else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            if int(arg) not in memo:
                raise _Bad("GET of an unknown memo key")
            stack.append(memo[int(arg)])
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
            else:
                attr, module = pop(), pop()
            if (module, attr) not in ALLOWED:
                raise _Bad(f"it names the callable {module}.{attr}, which a CIFAR-10 batch "
                           "never does")
            stack.append((module, attr))
        elif name == "REDUCE":
            args, func = pop(), pop()
            if not isinstance(func, tuple) or func not in ALLOWED or not isinstance(args, tuple):
                raise _Bad("REDUCE of something that is not an allowed callable")
            stack.append(_Call(func, args))
        elif name == "BUILD":
            state = pop()
            if not stack or not isinstance(stack[-1], _Call):
                raise _Bad("BUILD of something that is not an array")
            stack[-1].state = state
        else:
            raise _Bad(f"unexpected pickle opcode {name}")
    raise _Bad("no STOP opcode: the file is truncated")


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("latin-1")
    if isinstance(value, _Call) and value.func == ("_codecs", "encode") and value.args:
        return str(value.args[0]).encode("latin-1")
    raise _Bad(f"expected bytes, found {type(value).__name__}")


def _dtype(call: Any) -> np.dtype:
    if not (isinstance(call, _Call) and call.func == ("numpy", "dtype") and call.args
            and str(call.args[0]) in DTYPES):
        raise _Bad(f"an array of an unexpected type ({call!r})")
    order = call.state[1] if isinstance(call.state, tuple) and len(call.state) > 1 else "|"
    return np.dtype(str(call.args[0])).newbyteorder("<" if order in ("|", "<") else ">")


def _scalar(call: _Call) -> int:
    """numpy's scalar pickle: scalar(dtype, raw bytes)."""
    if len(call.args) != 2:
        raise _Bad("a malformed numpy scalar")
    kind, raw = _dtype(call.args[0]), _as_bytes(call.args[1])
    if len(raw) != kind.itemsize:
        raise _Bad("a malformed numpy scalar")
    return int(np.frombuffer(raw, dtype=kind)[0])


def _array(call: _Call) -> np.ndarray:
    """numpy's array pickle: _reconstruct(ndarray, (0,), b) + state (version, shape, dtype,
    fortran order, raw bytes)."""
    state = call.state
    if not isinstance(state, tuple) or len(state) != 5:
        raise _Bad("an array without its state")
    _, shape, dtype, fortran, raw = state
    kind = _dtype(dtype)
    if not (isinstance(shape, tuple) and all(isinstance(s, int) and s >= 0 for s in shape)):
        raise _Bad("an array with a malformed shape")
    raw = _as_bytes(raw)
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) != count * kind.itemsize:
        raise _Bad(f"an array of shape {shape} with {len(raw)} bytes of data")
    array = np.frombuffer(raw, dtype=kind).reshape(shape, order="F" if fortran else "C")
    return array.astype(kind.newbyteorder("="))


def _plain(value: Any) -> Any:
    if isinstance(value, _Call):
        if value.func in RECONSTRUCT:
            return _array(value)
        if value.func in SCALAR:
            return _scalar(value)
        if value.func == ("_codecs", "encode"):
            return _as_bytes(value)
        raise _Bad(f"a stray {'.'.join(value.func)} call")
    if isinstance(value, dict):
        return {(k.decode("latin-1") if isinstance(k, bytes) else k): _plain(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


def read_batch(path: str | Path) -> dict[str, Any]:
    """A CIFAR-10 python batch file as a dict (`data` a numpy array, `labels` a list ...).

    Raises `DataError` naming the file when it is not such a batch (and runs nothing from it).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read CIFAR-10 file {path}: {err}") from err
    try:
        batch = _plain(_decode(data))
    except (_Bad, ValueError, TypeError, KeyError, IndexError) as err:
        raise DataError(f"{path} is not a CIFAR-10 batch file ({err}); delete the "
                        "cifar-10-batches-py folder to download it again") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch file (it holds a "
                        f"{type(batch).__name__}, not a dict)")
    return batch
