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
    from pathlib import Path
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
