"""The loop on the real `alexnet.data.build_loaders` with a tiny generated image folder
(skipped until the data part provides build_loaders)."""

import pytest
import torch

from alexnet.train.config import resolve_config
from alexnet.train.loop import train

data = pytest.importorskip("alexnet.data")
if not hasattr(data, "build_loaders"):
    pytest.skip("alexnet.data.build_loaders is not there yet", allow_module_level=True)


def test_two_epochs_on_a_generated_image_folder(tmp_path):
    from PIL import Image

    root = tmp_path / "images"
    g = torch.Generator().manual_seed(0)
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(12):
            pixels = (torch.rand(48, 56, 3, generator=g) * 80 + 80 * c).byte().numpy()
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    cfg = resolve_config({"model": {"name": "paper", "image_size": 64},
                          "data": {"source": str(root), "crop": 64, "resize": 72},
                          "epochs": 2, "batch_size": 8, "quick": False, "device": "cpu",
                          "optim": {"lr": 0.001}})
    summary = train(cfg, tmp_path / "run")
    assert summary["epochs_done"] == 2
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["classes"] == ["class0", "class1", "class2"]
    assert "normalization" in state["data"] and "preprocess" in state["data"]
