"""Hostile and careless input: each case a way to lose work, run foreign code, resume wrongly or
end in a traceback, and the one-line refusal or the safe behaviour that replaced it."""

from __future__ import annotations

import errno
import os
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
    """Call it to fill the disk: from then on every file the package writes fails with ENOSPC
    after 100 bytes."""
    import alexnet.atomic

    real = open

    def patched(path, mode="r", **kwargs):
        f = real(path, mode, **kwargs)
        return _FullDisk(f, 100) if "w" in mode else f

    return lambda: monkeypatch.setattr(alexnet.atomic, "_open", patched)


def test_a_full_disk_during_a_checkpoint_is_one_error_and_no_partial_file(tmp_path, full_disk):
    from alexnet.errors import WriteError
    from alexnet.weights.checkpoint import save_checkpoint

    full_disk()
    with pytest.raises(WriteError, match=r"cannot write .*last\.pt: no space left"):
        save_checkpoint({"epoch": 1, "w": np.zeros(1000).tolist()}, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_each_problem_as_one_error_line(capsys):
    assert main(["train", "epochs=0", "batch_size=abc"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)


# ---------------------------------------------------------------- a run folder belongs to one run


def _cfg(**extra):
    from alexnet.train.run_config import resolve_config

    recipe = {"recipe": "test", "model": {"name": "paper", "image_size": 64}, "epochs": 1,
              "batch_size": 16, "log_every": 1, "quick": False, "deterministic": True,
              "optim": {"lr": 0.001}, "device": "cpu"}
    return resolve_config(recipe, extra)


@pytest.fixture
def generated_data(separable_data):
    """The `data` mapping of 16 generated 64×64 images (one batch) in memory: runs resumed by
    the CLI find them by the name their config.yaml holds."""
    return separable_data(n=16, size=64)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished one-epoch run, shared: the tests using it must leave it as it is."""
    from alexnet.data.memory import unregister
    from alexnet.train.loop import train
    from conftest import register_separable

    path = tmp_path_factory.mktemp("shared") / "run"
    train(_cfg(data=register_separable("finished-run", n=16, size=64)), path)
    yield path
    unregister("finished-run")


def test_out_on_an_existing_run_is_refused_and_force_moves_it_aside(tmp_path, generated_data,
                                                                    capsys):
    finished_run = tmp_path / "run"  # what a run leaves (the contents do not matter here)
    finished_run.mkdir()
    for name in ("config.yaml", "metrics.jsonl", "last.pt"):
        (finished_run / name).write_text(f"the old run's {name}")
    before = {p.name: p.read_bytes() for p in finished_run.iterdir() if p.is_file()}
    assert main(["train", "--out", str(finished_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already holds a run" in err
    assert f"--resume {finished_run}" in err and "--force" in err
    assert before == {p.name: p.read_bytes() for p in finished_run.iterdir() if p.is_file()}
    from alexnet.train.loop import train

    train(_cfg(data=generated_data), finished_run, force=True)
    aside = [p for p in finished_run.parent.iterdir() if ".replaced-" in p.name]
    assert len(aside) == 1 and (aside[0] / "last.pt").read_bytes() == before["last.pt"]
    assert (finished_run / "last.pt").is_file()


def test_a_held_lock_stops_a_second_process_on_the_same_folder(finished_run, tmp_path, capsys):
    from filelock import FileLock

    from alexnet.errors import ConfigError
    from alexnet.train.loop import train

    with FileLock(finished_run / ".lock", timeout=0):  # another process training there
        assert main(["train", "--resume", str(finished_run), "epochs=2"]) == 2
        assert "another process is training in" in capsys.readouterr().err
    with FileLock(tmp_path / ".lock", timeout=0), pytest.raises(ConfigError,
                                                                match="another process"):
        train(_cfg(), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]


def test_default_run_names_started_together_differ():
    from alexnet.train.run_folder import default_run_dir

    names = {default_run_dir("fashion-mnist") for _ in range(20)}
    assert len(names) == 20


@pytest.mark.parametrize("case", ["typo", "missing data", "empty class folder"])
def test_a_refused_start_leaves_no_run_folder(tmp_path, case, capsys):
    (tmp_path / "tree" / "a").mkdir(parents=True)
    (tmp_path / "tree" / "b").mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "tree" / "a" / "x.png")
    args = {"typo": ["model.lrnn=false", "--data", str(tmp_path / "tree")],
            "missing data": ["--data", str(tmp_path / "nowhere")],
            "empty class folder": ["--data", str(tmp_path / "tree")]}[case]
    assert main(["train", "--out", str(tmp_path / "run"), "device=cpu", *args]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_stale_temporary_files_are_removed_and_an_epoch_is_logged_once(tmp_path, generated_data,
                                                                        monkeypatch, capsys):
    """A kill between the epoch's end and the replacement of last.pt: the epoch is redone on
    resume and logged once; the temporary file the kill left is removed."""
    import json

    import alexnet.train.loop
    from alexnet.train.loop import train

    real = alexnet.train.loop.save_checkpoint

    class Killed(BaseException):
        pass

    def killed_at_epoch_2(state, path):
        if state["epoch"] == 2:
            (path.parent / f".{path.name}.x1y2z3.tmp").write_bytes(b"half a checkpoint")
            raise Killed
        return real(state, path)

    monkeypatch.setattr(alexnet.train.loop, "save_checkpoint", killed_at_epoch_2)
    with pytest.raises(Killed):
        train(_cfg(epochs=2, data=generated_data), tmp_path / "run")
    monkeypatch.setattr(alexnet.train.loop, "save_checkpoint", real)
    assert main(["train", "--resume", str(tmp_path / "run"), "log_every=2"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "with log_every=2" in out
    assert not list((tmp_path / "run").glob(".*.tmp"))
    records = [json.loads(line) for line in
               (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["split"]) for r in records] == [(0, "train"), (0, "val"),
                                                           (1, "train"), (1, "val")]


# ---------------------------------------------------------------- resume tells the truth


@pytest.mark.parametrize("override", ["optim.lr=0.5", "batch_size=4", "model.lrn=false",
                                      "data.crop=32", "seed=3"])
def test_resume_refuses_what_it_cannot_change_in_one_line(finished_run, override, capsys):
    before = (finished_run / "last.pt").read_bytes()
    assert main(["train", "--resume", str(finished_run), "epochs=3", override]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"--resume cannot change {override.split('=')[0]}" in err
    assert "epochs, log_every, device, data.workers" in err
    assert (finished_run / "last.pt").read_bytes() == before


def test_a_finished_run_says_it_finished(finished_run, capsys):
    assert main(["train", "--resume", str(finished_run)]) == 2
    err = capsys.readouterr().err
    assert "has finished: 1 of epochs=1 done" in err and "epochs=11" in err


def test_resume_with_a_checkpoint_that_does_not_fit_is_one_error(finished_run, tmp_path,
                                                                   separable_data):
    import torch

    from alexnet.errors import CheckpointError
    from alexnet.train.loop import train
    from alexnet.train.training_run import run_training

    five = separable_data(n=16, size=64, classes=5)
    with pytest.raises(CheckpointError, match=r"last\.pt does not fit the run .* 5 classes"):
        train(_cfg(data=five), finished_run, resume=True)
    state = torch.load(finished_run / "last.pt", weights_only=True)
    state["config"]["optim"]["lr"] = "fast"  # a config this version cannot run
    torch.save(state, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match=r"not valid for this version:\noptim.lr='fast'"):
        run_training(resume=str(tmp_path), overrides=[])


# ---------------------------------------------------------------- nonsense refused up front


@pytest.mark.parametrize("override, named", [
    ("epochs=0", "epochs=0: expected a whole number >= 1"),
    ("epochs=-2", "epochs=-2: expected a whole number >= 1"),
    ("epochs=1.5", "epochs=1.5: expected a whole number"),
    ("train_batches=-1", "train_batches=-1: expected null or a whole number >= 1"),
    ("batch_size=abc", "batch_size='abc': expected a whole number"),
    ("optim.lr=fast", "optim.lr='fast': expected a number > 0"),
    ("optim.momentum=1.5", "optim.momentum=1.5: expected a number in [0, 1)"),
    ("schedule.patience=x", "schedule.patience='x': expected a whole number >= 0"),
    ("seed=x", "seed='x': expected a whole number"),
    ("log_every=0", "log_every=0: expected a whole number >= 1"),
    ("deterministic=maybe", "deterministic='maybe': expected true or false"),
    ("device=gpu", "device='gpu': expected auto, cpu, cuda or cuda:N"),
    ("model.lrn=maybe", "model.lrn='maybe': expected true or false"),
    ("model.dropout=1.5", "model.dropout=1.5: expected a probability in [0, 1)"),
    ("model.image_size=big", "model.image_size='big': expected a whole number"),
    ("model.image_size=4000", "would have"),
    ("model.num_classes=5", "model.num_classes=5: set by the data"),
    ("model.name=vgg", "model.name='vgg': unknown model; valid models: paper"),
    ("data.crop=abc", "data.crop='abc': expected null or a whole number >= 1"),
    ("data.flip=maybe", "data.flip='maybe': expected null, true or false"),
    ("schedule.name=bogus", "schedule.name='bogus': expected one of plateau, events"),
    ('schedule.name=events schedule.events=[{"lr":1}]', "schedule: schedule event {'lr': 1}"),
])
def test_each_bad_value_is_one_line_naming_it_before_anything_is_built(tmp_path, override,
                                                                       named, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(out),
                 *override.split()]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and named in err[0], err
    assert not out.exists()


def test_cuda_without_a_gpu_is_one_line_everywhere(tmp_path, monkeypatch, capsys):
    import torch

    from alexnet.devices import resolve_device
    from alexnet.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                 "device=cuda"]) == 2
    assert "CUDA is not available on this machine; use device=cpu" in capsys.readouterr().err
    for name in ("cuda", "gpu", "cuda:x"):
        with pytest.raises(ConfigError, match=f"--device='{name}'"):
            resolve_device(name)


@pytest.mark.parametrize("flags, named", [
    (["--num-classes", "0"], "--num-classes=0: expected a whole number >= 1"),
    (["--num-classes", "-3"], "--num-classes=-3"),
    (["--num-classes", "300000000"], "would have"),
    (["model.dropout=1.5"], "model.dropout=1.5: expected a probability in [0, 1)"),
    (["lrn=maybe"], "model.lrn='maybe': expected true or false"),
])
def test_summary_refuses_impossible_models_in_one_line(flags, named, capsys):
    assert main(["summary", "paper", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0]


def test_a_one_class_dataset_is_refused(tmp_path):
    from PIL import Image

    from alexnet.data.sources import image_tree

    (tmp_path / "only").mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(tmp_path / "only" / f"{i}.png")
    with pytest.raises(DataError, match="one class folder .* at least two"):
        image_tree(tmp_path)


# ---------------------------------------------------------------- exact resume on image files


@pytest.mark.slow
def test_mid_epoch_resume_on_an_image_folder_equals_an_uninterrupted_run(tmp_path,
                                                                         monkeypatch):
    import os
    import signal

    import torch

    from alexnet.train.loop import train
    from alexnet.train.run_config import resolve_config
    from conftest import colour_class_tree, on_train_batch

    root = colour_class_tree(tmp_path / "images", per_class=12)  # 33 training images
    cfg = {"model": {"name": "paper", "image_size": 64}, "epochs": 1, "batch_size": 8,
           "data": {"source": str(root), "crop": 64, "resize": 72, "workers": 0},
           "quick": False, "device": "cpu", "deterministic": True, "log_every": 1,
           "optim": {"lr": 0.001}}

    def stopped_at_batch_2(epoch, batch, x, y):
        if batch == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    train(resolve_config(cfg), tmp_path / "full")
    with monkeypatch.context() as m:
        on_train_batch(m, stopped_at_batch_2)
        assert train(resolve_config(cfg), tmp_path / "cut")["interrupted"]
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["batch"] == 3
    train(None, tmp_path / "cut", resume=True)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]["state_dict"]
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["model"]["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- odd inputs


def test_a_fifo_is_refused_instead_of_hanging(tmp_path):
    import os
    import threading

    from alexnet.data.images import load_image

    fifo = tmp_path / "image.jpg"
    os.mkfifo(fifo)
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(_error_of(load_image, fifo)),
                              daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive():  # unblock the reader, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("load_image blocked on a FIFO")
    assert "not a regular file" in outcome[0]


def _error_of(fn, *args) -> str:
    try:
        fn(*args)
    except Exception as err:  # the test checks which
        return f"{type(err).__name__}: {err}"
    return "no error"


def _tiny_checkpoint(path: Path) -> Path:
    import torch

    from alexnet.models import create_model
    from alexnet.weights.checkpoint import save_checkpoint

    model = create_model("paper", num_classes=2, image_size=64)
    return save_checkpoint({
        "model": {"config": model.config, "state_dict": model.state_dict()},
        "classes": ["a", "b"], "config": {"data": {"source": "cifar10"}},
        "data": {"normalization": {"mean": torch.zeros(3, 1, 1), "std": torch.ones(3, 1, 1)},
                 "preprocess": {"resize": 64, "crop": 64, "channels": 3, "size": 64}}},
        path)


def test_features_never_overwrite_the_checkpoint_they_read(tmp_path, capsys):
    ckpt = _tiny_checkpoint(tmp_path / "run" / "best.pt")
    before = ckpt.read_bytes()
    for target in (ckpt, tmp_path / "run"):  # the file, or the run folder meaning it
        out = ckpt if target == tmp_path / "run" else target
        assert main(["features", str(target), "--out", str(out), "--data",
                     str(tmp_path / "nowhere")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "is the checkpoint it reads" in err[0]
    assert ckpt.read_bytes() == before


def test_predict_answers_a_fifo_with_an_error_line(tmp_path, capsys):
    import os

    from PIL import Image

    ckpt = _tiny_checkpoint(tmp_path / "best.pt")
    os.mkfifo(tmp_path / "pipe.png")
    Image.new("RGB", (70, 70)).save(tmp_path / "ok.png")
    assert main(["predict", str(ckpt), str(tmp_path / "pipe.png"), str(tmp_path / "ok.png"),
                 "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "pipe.png: error: " in out and "not a regular file" in out and "ok.png:" in out


# ---------------------------------------------------------------- interrupted prepare


def _tree(root: Path, classes: int = 2, per_class: int = 6) -> Path:
    from test_data_sources import make_tree

    make_tree(root, classes=classes, per_class=per_class, corrupt=False)
    return root


def test_sigterm_during_prepare_stops_the_workers_and_removes_partial_files(tmp_path,
                                                                            monkeypatch):
    import multiprocessing
    import os
    import signal

    from alexnet.data import prepare as prepare_module
    from alexnet.data.packed import is_packed
    from alexnet.data.stats import StatsAccumulator

    src, dest = _tree(tmp_path / "src"), tmp_path / "out"
    monkeypatch.setattr(prepare_module, "CHUNK", 2)  # several tasks per worker
    seen: dict[str, list] = {}
    merge = StatsAccumulator.merge

    def terminated(self, other):  # in the parent, after the first chunk came back
        if not seen:
            seen["workers"] = multiprocessing.active_children()
            seen["temps"] = sorted(p.name for p in dest.iterdir())
            os.kill(os.getpid(), signal.SIGTERM)
        return merge(self, other)

    class Unhandled(BaseException):
        pass

    def unhandled(*_):  # without prepare's own handler SIGTERM would end pytest itself
        raise Unhandled

    monkeypatch.setattr(StatsAccumulator, "merge", terminated)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        with pytest.raises(KeyboardInterrupt):
            prepare_module.prepare(src, dest, size=24, workers=2, progress=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen["workers"] and any(".tmp" in name for name in seen["temps"])
    assert not any(p.is_alive() for p in seen["workers"])
    assert list(dest.iterdir()) == []  # no partial file, no lock
    monkeypatch.setattr(StatsAccumulator, "merge", merge)
    meta = prepare_module.prepare(src, dest, size=24, workers=0, progress=False)
    assert not meta["already"] and is_packed(dest) and meta["counts"]["train"] > 0


def test_prepare_refuses_an_output_inside_its_source_and_a_second_prepare(tmp_path):
    from filelock import FileLock

    from alexnet.data.prepare import prepare

    src = _tree(tmp_path / "src")
    for dest in (src, src / "packed", src / "c0" / "deeper"):
        with pytest.raises(DataError, match="is inside SRC"):
            prepare(src, dest, size=24, workers=0, progress=False)
    assert sorted(p.name for p in src.iterdir()) == ["c0", "c1"]
    (tmp_path / "out").mkdir()
    with FileLock(tmp_path / "out" / ".lock", timeout=0), \
            pytest.raises(DataError, match="another `alexnet prepare` is writing"):
        prepare(src, tmp_path / "out", size=24, workers=0, progress=False)


def test_a_rerun_removes_what_a_killed_prepare_left(tmp_path):
    from alexnet.data.packed import is_packed
    from alexnet.data.prepare import prepare

    src, dest = _tree(tmp_path / "src"), tmp_path / "out"
    dest.mkdir()
    (dest / ".train.bin.k1ll3d.tmp").write_bytes(b"\xff\xd8 half of it")  # SIGKILL mid-write
    (dest / "meta.json.partial").write_text("{}")
    prepare(src, dest, size=24, workers=0, progress=False)
    assert is_packed(dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        ["meta.json", "skipped.txt", "stats.pt"] + [f"{s}.{k}" for s in ("train", "val")
                                                   for k in ("bin", "offsets.npy",
                                                             "labels.npy")])


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_a_signalled_prepare_process_leaves_no_workers(tmp_path, sig):
    """The real command in its own process: slow workers, a signal while they work; after it,
    no worker is left (SIGKILL: they notice their parent is gone) and a rerun finishes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from alexnet.data.packed import is_packed
    from alexnet.data.prepare import prepare

    src, dest = _tree(tmp_path / "src", per_class=8), tmp_path / "out"
    script = ("import time, sys\n"
              "from alexnet.data import prepare as p\n"
              "real = p._encode_chunk\n"
              "def slow(*a):\n    time.sleep(0.5)\n    return real(*a)\n"
              "p._encode_chunk = slow\np.CHUNK = 2\n"
              "from alexnet.cli import main\n"
              f"sys.exit(main(['prepare', {str(src)!r}, {str(dest)!r}, '--size', '24', "
              "'--workers', '2']))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children: list[int] = []
    deadline = time.time() + 60
    while time.time() < deadline and not (children and dest.is_dir() and
                                          any(p.name != ".lock" for p in dest.iterdir())):
        time.sleep(0.1)
        path = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        children = [int(c) for c in path.read_text().split()] if path.exists() else []
    assert children, "prepare never started its workers"
    os.kill(proc.pid, getattr(signal, sig))
    proc.wait(timeout=30)
    if sig == "SIGTERM":
        assert proc.returncode == 130 and b"interrupted" in proc.stderr.read()
        assert not list(dest.iterdir())
    time.sleep(2)  # a worker checks for its parent twice a second

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
        except (FileNotFoundError, IndexError):
            return False

    assert not [pid for pid in children if alive(pid)]
    prepare(src, dest, size=24, workers=0, progress=False)
    assert is_packed(dest) and not list(dest.glob(".*.tmp"))


# ---------------------------------------------------------------- corrupt prepared data


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    from alexnet.data.prepare import prepare

    root = tmp_path_factory.mktemp("packed")
    prepare(_tree(root / "src", classes=3, per_class=4), root / "out", size=24, workers=0,
            progress=False)
    return root / "out"


def _crafted(packed: Path, tmp_path: Path, craft) -> Path:
    import shutil

    dest = tmp_path / "crafted"
    shutil.copytree(packed, dest)
    craft(dest)
    return dest


def _truncate(d: Path) -> None:
    data = (d / "train.bin").read_bytes()
    (d / "train.bin").write_bytes(data[:len(data) // 2])


def _offsets(d: Path, change) -> None:
    path = d / "train.offsets.npy"
    a = np.load(path)
    change(a)
    np.save(path, a)


def _labels(d: Path, values) -> None:
    np.save(d / "val.labels.npy", np.asarray(values, dtype=np.int64))


def _stats(d: Path, change) -> None:
    import torch

    stats = torch.load(d / "stats.pt", weights_only=True)
    change(stats)
    torch.save(stats, d / "stats.pt")


def _meta(d: Path, **changes) -> None:
    import json

    meta = json.loads((d / "meta.json").read_text())
    (d / "meta.json").write_text(json.dumps({**meta, **changes}))


CRAFTED = {
    "truncated bin": (_truncate, r"train\.bin has .* bytes, but .*train\.offsets\.npy says"),
    "offsets not increasing": (lambda d: _offsets(d, lambda a: a.__setitem__(2, a[1])),
                               r"train\.offsets\.npy is corrupt"),
    "offsets past the end": (lambda d: _offsets(d, lambda a: a.__setitem__(-1, a[-1] + 99)),
                             r"train\.bin has"),
    "offsets as a pickle": (lambda d: np.save(d / "train.offsets.npy",
                                              np.array([{"x": 1}], dtype=object)),
                            r"cannot read .*train\.offsets\.npy"),
    "label out of range": (lambda d: _labels(d, [0, 1, 7]),
                           r"val\.labels\.npy holds labels 0\.\.\.7, outside the 3 classes"),
    "labels missing": (lambda d: _labels(d, [0, 1]), r"val\.labels\.npy has 2 labels for 3"),
    "stats of another size": (lambda d: _stats(d, lambda s: s.__setitem__(
        "mean", s["mean"][:, :8, :8])), r"stats\.pt: 'mean' must be .*\(3, 24, 24\)"),
    "stats not finite": (lambda d: _stats(d, lambda s: s["eigvec"].fill_(float("nan"))),
                         r"stats\.pt: 'eigvec' must be finite"),
    "stats not a dict": (lambda d: __import__("torch").save([1, 2], d / "stats.pt"),
                         r"stats\.pt holds a list"),
    "stats a foreign pickle": (lambda d: (d / "stats.pt").write_bytes(
        pickle.dumps(_Planted(d / "code-ran"))), r"cannot read .*stats\.pt"),
    "meta with one class": (lambda d: _meta(d, classes=["c0"]),
                            r"meta\.json: 'classes' must be a list of at least two"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_corrupt_prepared_data_is_one_error_naming_the_file(packed, tmp_path, case):
    from alexnet.data.sources import open_source

    craft, message = CRAFTED[case]
    with pytest.raises(DataError, match=message):
        open_source(str(_crafted(packed, tmp_path, craft)), tmp_path)


def test_an_undecodable_image_in_a_prepared_split_names_it(packed, tmp_path):
    from alexnet.data.packed import PackedSplit

    def garble(d: Path) -> None:
        data = bytearray((d / "val.bin").read_bytes())
        data[:64] = b"\x00" * 64
        (d / "val.bin").write_bytes(bytes(data))

    split = PackedSplit(_crafted(packed, tmp_path, garble), "val", 3)
    with pytest.raises(DataError, match=r"image 0 of .*val\.bin is not a readable JPEG"):
        split.decode(0)


@pytest.mark.parametrize("fmt", ["safetensors", "torchscript", "onnx"])
def test_a_full_disk_during_export_is_one_error_and_no_partial_file(tmp_path, fmt, full_disk,
                                                                    capsys):
    ckpt = _tiny_checkpoint(tmp_path / "best.pt")
    full_disk()
    assert main(["export", str(ckpt), "--format", fmt]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left on the device" in err[0], err
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_a_full_disk_during_features_and_figures_is_one_error(tmp_path, full_disk):
    import torch

    from alexnet.errors import WriteError
    from alexnet.evaluation.features import save_features
    from alexnet.figures.conv1_kernels import conv1_kernels_figure

    full_disk()
    with pytest.raises(WriteError, match=r"cannot write .*f\.pt: no space left"):
        save_features(tmp_path / "f.pt", torch.zeros(100, 64), torch.zeros(100), {})
    with pytest.raises(WriteError, match=r"cannot write .*k\.png: no space left"):
        conv1_kernels_figure(torch.randn(96, 3, 11, 11), tmp_path / "k.png", towers=2)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code, reason", [(errno.EACCES, "permission denied"),
                                          (errno.EROFS, "the file system is read-only")])
def test_an_unwritable_folder_is_one_error_naming_the_path(tmp_path, monkeypatch, code, reason):
    import alexnet.atomic
    from alexnet.atomic import write_text
    from alexnet.errors import WriteError

    def refused(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(alexnet.atomic.tempfile, "mkstemp", refused)
    with pytest.raises(WriteError, match=rf"cannot write .*x\.txt: {reason}"):
        write_text(tmp_path / "x.txt", "x")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- small things


def test_wnid_folders_are_shown_by_name_for_any_subset(tmp_path):
    from alexnet.data.sources import class_names, ilsvrc_names

    names = ilsvrc_names()
    assert len(names) == 1000 and names["n01440764"] == "tench"
    assert names["n15075141"] == "toilet tissue"
    assert class_names(["n02124075", "n07749582", "ants"]) == ["Egyptian cat", "lemon", "ants"]
    (tmp_path / "words.txt").write_text("n99999991\tspace rock, meteorite\n")
    assert class_names(["n99999991", "n01440764"], tmp_path / "train") == ["space rock",
                                                                           "tench"]


def test_a_checkpoint_of_a_wnid_subset_predicts_names():
    from alexnet.evaluation.checkpoints import display_names

    assert display_names({"classes": ["n02124075", "n07749582"]}, 2) == ["Egyptian cat", "lemon"]


def test_the_report_samples_its_top5_panel_across_classes_seeded():
    import torch

    from alexnet.evaluation.report import sample_across_classes

    labels = torch.tensor([0] * 10 + [1] * 10 + [2] * 10)  # a val split sorted by class
    pick = sample_across_classes(labels, 8)
    assert len(pick) == 8 and set(labels[pick].tolist()) == {0, 1, 2}
    assert torch.equal(pick, sample_across_classes(labels, 8))
    assert len(set(pick.tolist())) == 8


def test_the_report_panel_shows_several_classes_of_a_sorted_val_split(tmp_path):
    import torch

    from alexnet.data.memory import registered
    from alexnet.evaluation.report import evaluate_for_report
    from alexnet.models import create_model
    from conftest import eval_images

    x, _ = eval_images(24)
    y = torch.arange(24) // 8  # a val split sorted by class: 8 images of each
    model = create_model("paper", num_classes=3, image_size=64)
    with registered("sorted-val", x, y, x, y) as source:
        state = {"model": {"config": model.config, "state_dict": model.state_dict()},
                 "config": {"data": {"source": source, "crop": 64, "resize": 72}}}
        ev = evaluate_for_report(state, None, batch_size=32, device="cpu", views=("center",),
                                 progress=False)
    assert ev.images == 24 and len(set(ev.sample[3])) == 3


def test_config_yaml_is_utf8(tmp_path):
    from alexnet.train.run_config import dump_config

    assert "§5" in dump_config({"description": "§5's rule"})


def test_a_checkpoint_without_its_preprocessing_is_one_error(tmp_path):
    import torch

    from alexnet.evaluation.predict import load_classifier

    ckpt = _tiny_checkpoint(tmp_path / "best.pt")
    state = torch.load(ckpt, weights_only=True)
    del state["data"]["preprocess"]["channels"]
    torch.save(state, ckpt)
    with pytest.raises(DataError, match=r"incomplete or malformed \(KeyError: .channels.\)"):
        load_classifier(str(ckpt), device="cpu").transforms([torch.zeros(3, 70, 70,
                                                                         dtype=torch.uint8)])
