import os
from pathlib import Path

import pytest
import torch

# Real photographs (tiny-imagenet-10, cifar10-subset, hymenoptera) live outside the repository;
# ALEXNET_TEST_DATA names their folder (scripts/test.sh sets it). Tests that need them skip
# with the reason when it is unset or the set is missing.
TEST_DATA_ENV = "ALEXNET_TEST_DATA"


def photo_set(name: str) -> Path:
    """The folder of real photo set `name` under $ALEXNET_TEST_DATA, or a pytest skip saying
    why it is not there."""
    root = os.environ.get(TEST_DATA_ENV)
    if not root:
        pytest.skip(f"{TEST_DATA_ENV} is not set: no real photographs ({name}); "
                    "scripts/test.sh sets it")
    path = Path(root) / name
    if not path.is_dir():
        pytest.skip(f"no real photographs at {path} ({TEST_DATA_ENV}={root})")
    return path


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
    """A `Training` (alexnet.train.setup) around a model, an optimizer and a list of (x, y) batches:
    enough for `train_epoch`, without data, run folder or checkpoints."""
    from types import SimpleNamespace

    from alexnet.accel.settings import StepSettings
    from alexnet.train.distributed import Dist
    from alexnet.train.run_config import RunConfig
    from alexnet.train.setup import Training
    from alexnet.train.step import make_train_step

    return Training(cfg=RunConfig(log_every=log_every, epochs=epochs), run_dir=Path("."),
                    dist=Dist(), data=SimpleNamespace(train=batches), model=model, net=model,
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
    yield from _registering(register_separable, request.node.name)


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


# ---------------------------------------------------------------- evaluation: data and checkpoints

EVAL_SIZE = 64  # the model's input side: the paper family accepts image_size=64 for fast tests
EVAL_SIDE = EVAL_SIZE + 8  # the registered images' side; runs crop EVAL_SIZE of it


def eval_images(n: int = 12, classes: int = 3, seed: int = 7) -> tuple[torch.Tensor,
                                                                        torch.Tensor]:
    """n uint8 RGB images (EVAL_SIDE²), the class showing in the brightness; and their labels
    (0, 1, 2, 0, ...)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    base = (y.float() * 80 + 40)[:, None, None, None]
    noise = torch.randn(n, 3, EVAL_SIDE, EVAL_SIDE, generator=g) * 30
    return (base + noise).clamp(0, 255).to(torch.uint8), y


def register_eval_data(name: str, *, n: int = 12, classes: int = 3, seed: int = 7) -> dict:
    """Register `eval_images(n, classes, seed)` as both splits of `memory:<name>`
    (alexnet.data.memory) and return the `data:` mapping of a run on them that centre-crops
    EVAL_SIZE of EVAL_SIDE (per-channel mean and std, the memory sources' default)."""
    from alexnet.data.memory import register_tensors

    x, y = eval_images(n, classes, seed)
    source = register_tensors(name, x, y, x, y, classes=[f"class{c}" for c in range(classes)])
    return {"source": source, "resize": EVAL_SIDE, "crop": EVAL_SIZE}


@pytest.fixture(scope="module")
def eval_data(request):
    """`register_eval_data(**options)` for this test module (a new name each call);
    unregistered at its end."""
    yield from _registering(register_eval_data, request.module.__name__)


def _registering(register, prefix: str):
    """A fixture's body: yields `make(**options)`, which calls `register(name, **options)` with
    a new name `<prefix>-<k>` each time; every name is unregistered afterwards."""
    from alexnet.data.memory import unregister

    names: list[str] = []

    def make(**options) -> dict:
        names.append(f"{prefix}-{len(names)}")
        return register(names[-1], **options)

    yield make
    for name in names:
        unregister(name)


def sensitive(model: torch.nn.Module) -> torch.nn.Module:
    """He-initialised weights, zero biases: an untrained net whose outputs depend on the input
    (the paper's init, bias 1 and std 0.01, gives nearly the same logits for every image)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                torch.nn.init.kaiming_normal_(m.weight)
                torch.nn.init.zeros_(m.bias)
    return model.eval()


UNREACHABLE = "eval-checkpoint-data"  # write_checkpoint's source when given no data


def write_checkpoint(path: Path, data: dict | None = None, *, classes: int = 3,
                     name: str = "paper", seed: int = 0, epoch: int = 2,
                     quick: bool = False) -> Path:
    """A checkpoint in the training loop's layout of a freshly initialised (`sensitive`) tiny
    model with `classes` classes, trained (so its config says) on `data`, a `data:` mapping of
    a registered memory source (`register_eval_data`); its `data` section (normalisation,
    preprocessing) comes from the real `build_loaders` on that mapping, as training writes it.
    Without `data`: `memory:eval-checkpoint-data`, registered only while writing, so the
    checkpoint works for predict/export but its data cannot be loaded afterwards."""
    from alexnet.data import DataConfig, build_loaders
    from alexnet.data.memory import registered
    from alexnet.models import create_model
    from alexnet.weights.checkpoint import save_checkpoint

    if data is None:
        with registered(UNREACHABLE, *eval_images(), *eval_images()):
            return write_checkpoint(path, {"source": f"memory:{UNREACHABLE}",
                                           "resize": EVAL_SIDE, "crop": EVAL_SIZE},
                                    classes=classes, name=name, seed=seed, epoch=epoch,
                                    quick=quick)
    bundle = build_loaders(DataConfig.from_dict(data), batch_size=8, device="cpu", seed=0)
    torch.manual_seed(seed)
    model = sensitive(create_model(name, num_classes=classes, image_size=EVAL_SIZE))
    return save_checkpoint({
        "model": {"config": dict(model.config), "state_dict": model.state_dict()},
        "classes": [f"class{i}" for i in range(classes)],
        "data": {"normalization": bundle.normalization, "preprocess": bundle.preprocess},
        "config": {"recipe": "test", "model": {"name": name, "image_size": EVAL_SIZE},
                   "data": dict(data), "epochs": epoch, "seed": seed, "quick": quick},
        "epoch": epoch, "batch": 0, "optimizer": {}, "scheduler": {}, "rng": {},
        "metrics": {"best_top1_err": 0.5, "val": {"top1_err": 0.5, "top5_err": 0.0}},
    }, path)


def hand_views(images: torch.Tensor, normalization: dict, views: str = "center"
               ) -> torch.Tensor:
    """What the data part should make of EVAL_SIDE² uint8 images for a run that crops
    EVAL_SIZE with a per-channel mean, computed by hand: (x - mean) / std, then the central
    EVAL_SIZE² patch, or for ten views the four corner patches, the centre and the same five
    of the mirror image (torchvision's TenCrop order)."""
    x = (images.float() - normalization["mean"]) / normalization["std"]
    s, o = EVAL_SIZE, (EVAL_SIDE - EVAL_SIZE) // 2
    if views == "center":
        return x[..., o:o + s, o:o + s]
    d = EVAL_SIDE - s

    def five(t: torch.Tensor) -> list[torch.Tensor]:
        return [t[..., :s, :s], t[..., :s, d:], t[..., d:, :s], t[..., d:, d:],
                t[..., o:o + s, o:o + s]]

    return torch.stack(five(x) + five(x.flip(-1)), dim=1)


def bf16_grads_eager_and_compiled(net: torch.nn.Module, x: torch.Tensor,
                                  ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The parameter gradients of `net` on `x` under CPU bf16 autocast (loss: the sum of the
    squared outputs), eager and through `torch.compile`."""

    def grads(model: torch.nn.Module) -> list[torch.Tensor]:
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x).float().square().sum().backward()
        return [p.grad.clone() for p in net.parameters()]

    return grads(net), grads(torch.compile(net))
