from pathlib import Path

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def bare_run(model, optimizer, batches, *, log_every: int = 1, epochs: int = 1):
    """A `Run` (alexnet.train.setup) around a model, an optimizer and a list of (x, y) batches:
    enough for `train_epoch`, without data, run folder or checkpoints."""
    from types import SimpleNamespace

    from alexnet.train.accel import StepSettings
    from alexnet.train.distributed import Dist
    from alexnet.train.setup import Run
    from alexnet.train.step import make_train_step

    return Run(cfg={"log_every": log_every, "epochs": epochs}, run_dir=Path("."), dist=Dist(),
               data=SimpleNamespace(train=batches), model=model, net=model,
               optimizer=optimizer, schedule=None,
               accel=StepSettings(amp=False, channels_last=False, compile=False,
                                  compile_optimizer=False),
               step=make_train_step(model, optimizer, amp=False),
               steps_per_epoch=len(batches))


# ---------------------------------------------------------------- generated data


def register_separable(name: str = "separable", *, n: int = 32, val: int = 16, classes: int = 3,
                       size: int = 64, channels: int = 1) -> dict:
    """Register `n` training and `val` validation uint8 images (`size`², `channels`) under
    `memory:<name>` (alexnet.data.memory), their class shown by their brightness so that a few
    steps learn something; returns the config's `data` mapping for them (no resize, no crop).
    Deterministic: a spawned process (a DDP rank) registering the same name gets the same data.
    """
    from alexnet.data.memory import register_tensors

    g = torch.Generator().manual_seed(123)
    y = torch.arange(n + val) % classes
    step = min(40.0, 160.0 / max(classes - 1, 1))  # brightness between neighbouring classes
    level = 128 + (y.float() - (classes - 1) / 2) * step  # 3 classes: 88, 128, 168
    noise = torch.randn(n + val, channels, size, size, generator=g) * (step / 2)
    x = (level[:, None, None, None] + noise).round().clamp(0, 255).to(torch.uint8)
    source = register_tensors(name, x[:n], y[:n], x[n:], y[n:],
                              classes=[f"class{c}" for c in range(classes)])
    return {"source": source, "resize": size}


@pytest.fixture
def separable_data(request):
    """`register_separable(**options)` for this test, keyed by the test's name; unregistered
    at its end."""
    from alexnet.data.memory import unregister

    names = []

    def make(**options) -> dict:
        names.append(f"{request.node.name}-{len(names)}")
        return register_separable(names[-1], **options)

    yield make
    for name in names:
        unregister(name)


def on_train_batch(monkeypatch, hook):
    """Call `hook(epoch, batch, x, y)` as the real training loader yields each batch (before the
    loop trains on it); a non-None return replaces the batch. How tests stop a run at batch k
    (a signal, an exception) or hand it a broken batch."""
    from alexnet.data.loaders import TrainLoader

    iterate = TrainLoader.iterate

    def hooked(self, epoch, start_batch=0):
        for b, (x, y) in enumerate(iterate(self, epoch, start_batch), start=start_batch):
            replaced = hook(epoch, b, x, y)
            yield replaced if replaced is not None else (x, y)

    monkeypatch.setattr(TrainLoader, "iterate", hooked)


def colour_class_tree(root: Path, classes: int = 3, per_class: int = 10) -> Path:
    """An image folder root/class<c>/<i>.png of 48×56 noise images whose brightness tells the
    class apart (class c: values 80c..80c+80), for end-to-end runs on the real data part."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = (torch.rand(48, 56, 3, generator=g) * 80 + 80 * c).byte().numpy()
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root
