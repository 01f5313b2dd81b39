"""Hostile and careless input: each case a way to lose work, run foreign code, resume wrongly or
end in a traceback, and the one-line refusal or the safe behaviour that replaced it."""

from __future__ import annotations

import errno
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from alexnet.cli import main
from alexnet.data.sources import cifar10
from alexnet.errors import DataError

# ---------------------------------------------------------------- nothing executed from data


class _Planted:
    """Unpickling this creates a file: the proof that a pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _cifar_folder(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    return folder


def py2_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch as the official archive stores it: a python 2 cPickle (protocol 2), strings as
    BINSTRING/SHORT_BINSTRING, the array through numpy.core.multiarray._reconstruct."""
    def s(text: bytes) -> bytes:
        return b"U" + bytes([len(text)]) + text

    raw = data.tobytes()
    out = b"\x80\x02}q\x00(" + s(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85"
    out += s(b"b") + b"\x87Rq\x03(K\x01" + b"M" + struct.pack("<H", data.shape[0])
    out += b"M" + struct.pack("<H", data.shape[1]) + b"\x86cnumpy\ndtype\nq\x04" + s(b"u1")
    out += b"K\x00K\x01\x87R(K\x03" + s(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    out += b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb" + s(b"labels") + b"](" + \
        b"".join(b"K" + bytes([v]) for v in labels) + b"eu."
    return out


def test_the_official_python2_batch_layout_is_read_without_pickle(tmp_path):
    folder = _cifar_folder(tmp_path)
    rng = np.random.default_rng(0)
    data = {n: rng.integers(0, 256, (4, 3072), dtype=np.uint8)
            for n in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]}
    for name, x in data.items():
        (folder / name).write_bytes(py2_batch(x, [1, 2, 3, 9]))
    assert pickle.loads((folder / "test_batch").read_bytes(), encoding="latin1")["labels"] == \
        [1, 2, 3, 9]  # the hand-made file is a valid pickle
    src = cifar10(tmp_path)
    assert src.train.images.shape == (20, 3, 32, 32)
    assert np.array_equal(src.val.images.reshape(4, -1).numpy(), data["test_batch"])
    assert src.val.labels.tolist() == [1, 2, 3, 9]


def test_a_planted_cifar10_pickle_is_refused_and_never_executed(tmp_path):
    folder = _cifar_folder(tmp_path)
    marker = tmp_path / "code-ran"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps({"data": _Planted(marker), "labels": [0]}))
    with pytest.raises(DataError, match=r"data_batch_1 is not a CIFAR-10 batch file .*io.open"):
        cifar10(tmp_path)
    assert not marker.exists()


def test_the_default_data_root_is_absolute_under_the_user_cache(tmp_path, monkeypatch):
    from alexnet.data import DataConfig

    monkeypatch.delenv("ALEXNET_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    root = DataConfig.from_dict({"source": "cifar10"}).resolved().root
    assert root == str(tmp_path / "cache" / "alexnet")


# ---------------------------------------------------------------- atomic writes, full disks


class _FullDisk:
    """A file whose writes fail with ENOSPC after `room` bytes, as on a full disk."""

    def __init__(self, f, room: int) -> None:
        self.f, self.room = f, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.fixture
def full_disk(monkeypatch):
    import alexnet.atomic

    real = open

    def patched(path, mode="r", **kwargs):
        f = real(path, mode, **kwargs)
        return _FullDisk(f, 100) if "w" in mode else f

    monkeypatch.setattr(alexnet.atomic, "_open", patched)


def test_a_full_disk_during_a_checkpoint_is_one_error_and_no_partial_file(tmp_path, full_disk):
    from alexnet.errors import WriteError
    from alexnet.train.checkpoint import save_checkpoint

    with pytest.raises(WriteError, match=r"cannot write .*last\.pt: no space left"):
        save_checkpoint({"epoch": 1, "w": np.zeros(1000).tolist()}, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_each_problem_as_one_error_line(capsys):
    assert main(["train", "epochs=0", "batch_size=abc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
