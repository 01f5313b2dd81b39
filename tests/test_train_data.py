"""The loop on the real `alexnet.data.build_loaders` with a tiny generated image folder."""

import torch

from alexnet.train.loop import train
from alexnet.train.run_config import resolve_config
from conftest import colour_class_tree


def test_two_epochs_on_a_generated_image_folder(tmp_path):
    root = colour_class_tree(tmp_path / "images", per_class=12)
    cfg = resolve_config({"model": {"name": "paper", "image_size": 64},
                          "data": {"source": str(root), "crop": 64, "resize": 72},
                          "epochs": 2, "batch_size": 8, "quick": False, "device": "cpu",
                          "optim": {"lr": 0.001}})
    summary = train(cfg, tmp_path / "run")
    assert summary["epochs_done"] == 2
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["classes"] == ["class0", "class1", "class2"]
    assert "normalization" in state["data"] and "preprocess" in state["data"]
