"""Tiny stand-ins for the data part (the DataBundle contract of docs/ARCHITECTURE.md, eval side)
and tiny checkpoints, shared by the evaluation, figures, report and export tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torchvision.transforms.v2 import functional as TF

from alexnet.checkpoint import save_checkpoint
from alexnet.models import create_model

SIZE = 64  # model input side: the paper family accepts image_size=64 for fast tests
MEAN, STD = 0.5, 0.25


def normalize(u8: torch.Tensor) -> torch.Tensor:
    """uint8 (..., C, H, W) -> float, as the fake data part normalises."""
    return (u8.float() / 255 - MEAN) / STD


def make_images(n: int = 12, classes: int = 3, side: int = SIZE + 8, seed: int = 7):
    """n uint8 (3, side, side) images, the class showing in the brightness; and labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    base = (y.float() * 80 + 40)[:, None, None, None]
    x = (base + torch.randn(n, 3, side, side, generator=g) * 30).clamp(0, 255).to(torch.uint8)
    return x, y


def fake_preprocess(images: list[torch.Tensor], normalization: Any, preprocess: Any,
                    views: str = "center") -> torch.Tensor:
    """`preprocess_images`' contract: resize to preprocess["resize"], centre crop or ten views."""
    out = []
    for img in images:
        img = TF.resize(img, [preprocess["resize"]] * 2, antialias=True)
        if views == "ten":
            out.append(torch.stack(TF.ten_crop(img, [preprocess["crop"]] * 2)))
        else:
            out.append(TF.center_crop(img, [preprocess["crop"]] * 2))
    return normalize(torch.stack(out))


class FakeBundle(SimpleNamespace):
    """`eval_loader(views)` over in-memory uint8 images; `train` = the same images, centre."""

    def eval_loader(self, views: str = "center", split: str = "val",
                    batch_size: int | None = None, limit: int | None = None):
        n = len(self.images) if limit is None else limit
        bs = batch_size or self.batch
        x = fake_preprocess(list(self.images[:n]), None, self.preprocess, views)
        return [(x[i:i + bs], self.labels[:n][i:i + bs]) for i in range(0, len(x), bs)]


def make_builder(n: int = 12, classes: int = 3, seed: int = 7):
    """A `build_data(mapping, *, batch_size, device, seed)` returning a FakeBundle."""
    images, labels = make_images(n, classes, seed=seed)
    calls: list[dict] = []

    def build(mapping: dict, *, batch_size: int, device: torch.device, seed: int = 0):
        calls.append(dict(mapping))
        bundle = FakeBundle(
            images=images, labels=labels, batch=min(batch_size, 5), num_classes=classes,
            in_channels=3, classes=[f"class{i}" for i in range(classes)],
            normalization={"mean": torch.full((3, 1, 1), MEAN), "std": torch.full((3, 1, 1), STD)},
            preprocess={"resize": SIZE + 8, "crop": SIZE})
        bundle.train = bundle.eval_loader("center")
        return bundle

    build.calls = calls  # type: ignore[attr-defined]
    build.images, build.labels = images, labels  # type: ignore[attr-defined]
    return build


def sensitive(model: torch.nn.Module) -> torch.nn.Module:
    """He-initialised weights, zero biases: an untrained net whose outputs depend on the input
    (the paper's init, bias 1 and std 0.01, gives nearly the same logits for every image)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
                torch.nn.init.kaiming_normal_(m.weight)
                torch.nn.init.zeros_(m.bias)
    return model.eval()


def write_checkpoint(path: Path, *, classes: int = 3, name: str = "paper", seed: int = 0,
                     epoch: int = 2, source: str = "fake-data", quick: bool = False) -> Path:
    """A checkpoint in the training loop's layout, of a freshly initialised tiny model."""
    torch.manual_seed(seed)
    model = sensitive(create_model(name, num_classes=classes, image_size=SIZE))
    return save_checkpoint({
        "model": {"config": dict(model.config), "state_dict": model.state_dict()},
        "classes": [f"class{i}" for i in range(classes)],
        "data": {"normalization": {"mean": torch.full((3, 1, 1), MEAN),
                                   "std": torch.full((3, 1, 1), STD)},
                 "preprocess": {"resize": SIZE + 8, "crop": SIZE}},
        "config": {"recipe": "test", "model": {"name": name, "image_size": SIZE},
                   "data": {"source": source, "crop": SIZE}, "epochs": epoch, "seed": seed,
                   "quick": quick},
        "epoch": epoch, "batch": 0, "optimizer": {}, "scheduler": {}, "rng": {},
        "metrics": {"best_top1_err": 0.5, "val": {"top1_err": 0.5, "top5_err": 0.0}},
    }, path)


def pil_load(path: str) -> torch.Tensor:
    """`load_image`'s contract with PIL: uint8 (3, H, W), DataError for unreadable files."""
    from PIL import Image, UnidentifiedImageError

    from alexnet.errors import DataError

    try:
        with Image.open(path) as im:
            return TF.pil_to_tensor(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(f"cannot read image {path}: {err}") from err


def test_fake_bundle_keeps_the_eval_contract():
    b = make_builder()({"source": "x"}, batch_size=4, device=torch.device("cpu"))
    x, y = b.eval_loader("center")[0]
    assert x.shape == (4, 3, SIZE, SIZE) and y.dtype == torch.int64
    x10, _ = b.eval_loader("ten")[0]
    assert x10.shape == (4, 10, 3, SIZE, SIZE)
    assert torch.allclose(x10[:, 4], x)  # ten_crop's 5th view is the centre
    assert torch.allclose(x10[:, 9], x.flip(-1))  # and the 10th its mirror
