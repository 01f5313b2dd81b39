"""Checkpoints: atomic writes, weights_only loads, clear errors for the wrong or a broken file."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
import torch

from alexnet.errors import CheckpointError, WriteError
from alexnet.models import create_model
from alexnet.weights.checkpoint import FORMAT, load_checkpoint, load_model, save_checkpoint


def model_state(name: str = "paper", num_classes: int = 10) -> dict:
    model = create_model(name, num_classes=num_classes, image_size=64)
    return {"model": {"config": model.config, "state_dict": model.state_dict()}, "epoch": 3}


def test_round_trip_loads_with_weights_only(tmp_path: Path) -> None:
    state = model_state()
    path = save_checkpoint(state, tmp_path / "run" / "last.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["epoch"] == 3
    model, loaded = load_model(tmp_path / "run")  # a run folder resolves to last.pt
    assert not model.training
    for k, v in state["model"]["state_dict"].items():
        assert torch.equal(model.state_dict()[k], v)
    assert loaded["epoch"] == 3


def test_failed_save_keeps_the_old_file(tmp_path: Path) -> None:
    path = save_checkpoint({"epoch": 1}, tmp_path / "last.pt")
    before = path.read_bytes()
    with mock.patch("torch.save", side_effect=OSError(28, "No space left on device")), \
            pytest.raises(WriteError, match="no space left"):
        save_checkpoint({"epoch": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = save_checkpoint(model_state(), tmp_path / "last.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_wrong_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="without best.pt or last.pt"):
        load_checkpoint(tmp_path)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an alexnet checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_text("epoch 3, loss 0.5\n")
    for name in ("empty.pt", "text.pt"):
        with pytest.raises(CheckpointError, match="truncated, corrupt or not a PyTorch file"):
            load_checkpoint(tmp_path / name)


def test_a_run_folder_means_its_best_checkpoint(tmp_path: Path) -> None:
    from alexnet.weights.checkpoint import resolve_checkpoint_path

    save_checkpoint(model_state("paper", 10), tmp_path / "last.pt")
    assert resolve_checkpoint_path(tmp_path) == tmp_path / "last.pt"
    save_checkpoint(model_state("paper", 10), tmp_path / "best.pt")
    assert resolve_checkpoint_path(tmp_path) == tmp_path / "best.pt"


def test_model_and_class_mismatch_name_both(tmp_path: Path) -> None:
    path = save_checkpoint(model_state("paper", 10), tmp_path / "best.pt")
    with pytest.raises(CheckpointError, match="expected a 'owt' model.*holds 'paper'"):
        load_model(path, expect_model="owt")
    with pytest.raises(CheckpointError, match="expected 1000 classes.*has 10"):
        load_model(path, expect_num_classes=1000)
    state = model_state("paper", 10)
    state["model"]["state_dict"]["classifier.fc8.weight"] = torch.zeros(5, 4096)
    with pytest.raises(CheckpointError, match="weights do not fit.*size mismatch for "
                                              "classifier.fc8.weight"):
        load_model(state)


def test_the_word_torchvision_names_pretrained_weights_and_dot_slash_a_path(
        tmp_path: Path, monkeypatch) -> None:
    from alexnet.weights.checkpoint import resolve_checkpoint_path

    monkeypatch.chdir(tmp_path)
    save_checkpoint(model_state("paper", 10), tmp_path / "torchvision" / "last.pt")
    assert resolve_checkpoint_path("./torchvision") == Path("torchvision") / "last.pt"
    planted = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"")  # resolving does not read it
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert resolve_checkpoint_path("torchvision") == planted


def test_open_checkpoint_gives_the_model_and_the_data_to_feed_it(tmp_path: Path) -> None:
    from alexnet.weights.checkpoint import open_checkpoint

    mean = {"mean": torch.zeros(3, 1, 1), "std": torch.ones(3, 1, 1)}
    own = {**model_state(), "config": {"data": {"source": "photos", "resize": 72}},
           "data": {"normalization": mean}}
    path = save_checkpoint(own, tmp_path / "run" / "best.pt")
    opened = open_checkpoint(tmp_path / "run", device="cpu")  # a run folder: its best.pt
    assert opened.path == path and not opened.model.training
    assert opened.device == torch.device("cpu") and opened.state["epoch"] == 3
    assert opened.data == {"source": "photos", "resize": 72}
    assert torch.equal(opened.normalization["mean"], mean["mean"])
    assert open_checkpoint(own, "other", device="cpu").data["source"] == "other"
    # pretrained weights have no data of their own: a command that needs data says what to give
    pretrained = {**model_state(), "config": {"data": {"source": None}}}
    assert open_checkpoint(pretrained, device="cpu").data is None
    with pytest.raises(CheckpointError, match="no data of its own: give --data"):
        open_checkpoint(pretrained, device="cpu", need_data=True)


def test_a_xavier_model_rebuilds_from_its_config_and_older_checkpoints_load() -> None:
    # the default recipe's model (init=xavier): `alexnet report` rebuilds it from the checkpoint
    model = create_model("paper", num_classes=10, in_channels=1, image_size=64, init="xavier")
    assert "init_bias" not in model.config
    create_model(**model.config)
    older = {"model": {"config": {**model.config, "init_bias": 1.0},  # as written before
                       "state_dict": model.state_dict()}}
    loaded, _ = load_model(older)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                 model.state_dict().values(), strict=True))
