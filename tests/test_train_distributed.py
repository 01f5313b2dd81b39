"""Two gloo processes with DDP (on the CPU) take the same steps as one process on the
combined batch, each reading its share of the real in-memory loaders."""

import socket

import pytest
import torch
import torch.multiprocessing as mp

from alexnet.train.loop import train
from alexnet.train.run_config import resolve_config
from conftest import register_separable


def _cfg() -> dict:
    # every process registers the same generated images under one name (the registry is
    # per process): 32 training images, 16 validation images
    data = register_separable("ddp", n=32, size=64)
    recipe = {"recipe": "test", "model": {"name": "paper", "image_size": 64, "dropout": 0.0},
              "epochs": 1, "train_batches": 2, "batch_size": 8, "log_every": 1,
              "quick": False, "device": "cpu", "optim": {"lr": 0.001},
              # fp32: bf16 autocast (on by default on CPUs with native bf16) rounds a batch of 4
              # and one of 8 differently, which is not what this test is about
              "amp": False, "channels_last": False, "compile": False, "data": data}
    return resolve_config(recipe)


@pytest.fixture(autouse=True)
def _forget_the_images():
    yield
    from alexnet.data.memory import unregister

    unregister("ddp")


def _rank(rank: int, port: int, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    train(_cfg(), out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two spawned processes: about 15 s on 2 cores
def test_two_process_ddp_equals_one_process_on_the_combined_batch(tmp_path):
    mp.spawn(_rank, args=(_free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    train(_cfg(), tmp_path / "one")
    ddp = torch.load(tmp_path / "ddp" / "last.pt", weights_only=True)
    one = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    assert ddp["config"]["distributed"]["world_size"] == 2
    assert ddp["config"]["distributed"]["per_rank_batch"] == 4
    init = _cfg()
    torch.manual_seed(init["seed"])
    from alexnet.models import create_model

    start = create_model("paper", num_classes=3, in_channels=1, image_size=64, dropout=0.0)
    moved = 0.0
    for key, w in one["model"]["state_dict"].items():
        torch.testing.assert_close(ddp["model"]["state_dict"][key], w, rtol=1e-5, atol=1e-6)
        moved = max(moved, (w - start.state_dict()[key]).abs().max().item())
    assert moved > 1e-5  # the weights did move: the runs are not trivially equal
    # each process evaluated its half of the validation split; the sums are the whole split's
    assert ddp["metrics"]["val"]["images"] == one["metrics"]["val"]["images"] == 16
    for key in ("loss", "top1_err", "top5_err"):
        assert ddp["metrics"]["val"][key] == pytest.approx(one["metrics"]["val"][key], abs=1e-5)
