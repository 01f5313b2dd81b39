"""The released code's data variant (`data.variant=original`, convdata.py) vs the paper's."""

from __future__ import annotations

import torch

from alexnet.data.augment import batch_generator
from alexnet.data.data_config import DataConfig
from alexnet.data.loaders import build_pipeline
from alexnet.data.pipeline import Pipeline

STATS = {"mean": torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3)) * 255,
         "channel_mean": torch.full((3,), 120.0), "channel_std": torch.full((3,), 60.0),
         "eigval": torch.tensor([0.04, 0.0036, 0.0004]), "eigvec": torch.eye(3)}


def _images(b: int = 64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    return torch.randint(0, 256, (b, 3, 32, 32), generator=gen, dtype=torch.uint8)


def _pipeline(variant: str, lighting: float = 0.1, **kw) -> Pipeline:
    cfg = DataConfig.from_dict({"source": "/nowhere", "resize": 32, "crop": 24, "mean": "pixel",
                                "lighting": lighting, "variant": variant, **kw}).resolved()
    return build_pipeline(cfg, STATS)


def _shifts(p: Pipeline, x: torch.Tensor, batch: int) -> torch.Tensor:
    """The per-image RGB shift the colour noise added, (B, 3), in input units."""
    on = p.train(x, batch_generator(0, 0, batch)) * p.noise_divisor
    off = p.train(x, batch_generator(0, 0, batch), lighting=False)
    return (on - off)[:, :, 0, 0] * p.std[:, 0, 0]


def test_original_divides_by_1_1_only_training_images_while_noise_is_on() -> None:
    x = _images(8)
    orig, paper = _pipeline("original", chunk=1), _pipeline("paper")
    assert orig.noise_divisor == 1.1 and paper.noise_divisor == 1.0
    lit = orig.train(x, batch_generator(0, 0, 1))
    off = orig.train(x, batch_generator(0, 0, 1), lighting=False)  # noise off: not divided
    noise = (lit * 1.1 - off).flatten(2)  # (x - mean + noise) / 1.1 · 1.1 - (x - mean)
    assert noise.abs().max() > 0
    assert torch.allclose(noise, noise[:, :, :1].expand_as(noise), atol=1e-3)  # one RGB shift
    assert torch.allclose(off, _pipeline("original", lighting=0.0, chunk=1).train(
        x, batch_generator(0, 0, 1)))
    centre = orig.eval(x)  # test images: mean-subtracted, never divided
    assert torch.allclose(centre, x[..., 4:28, 4:28].float() - STATS["mean"][:, 4:28, 4:28])


def test_original_subtracts_the_centre_crop_of_the_mean_image_from_every_patch() -> None:
    x = _images(16)
    p = _pipeline("original", lighting=0.0, chunk=1)
    out = p.train(x, batch_generator(0, 0, 2))  # (16, 3, 24, 24), crops and flips vary
    centre_mean = STATS["mean"][:, 4:28, 4:28]  # convdata.py's data_mean_crop
    restored = out + centre_mean  # the raw pixels of each patch, if the centre mean was used
    assert torch.allclose(restored, restored.round(), atol=1e-3)  # raw uint8 values
    assert restored.min() >= -1e-3 and restored.max() <= 255 + 1e-3
    paper = _pipeline("paper", lighting=0.0).train(x, batch_generator(0, 0, 2))
    assert not torch.allclose(paper + centre_mean, (paper + centre_mean).round(), atol=1e-3)


def test_original_noise_is_alpha_times_sqrt_lambda_and_fresh_every_batch() -> None:
    x = _images(64)
    orig, paper = _pipeline("original", chunk=1), _pipeline("paper")
    assert torch.allclose(orig.eigval, STATS["eigval"].sqrt())  # convdata.py's color_stdevs
    assert torch.allclose(paper.eigval, STATS["eigval"])  # §4.1: α·λ
    shifts = torch.cat([_shifts(orig, x, b) for b in range(20)])  # 1,280 images
    # eigvec = I: the shift along component i is 255·α_i·√λ_i, with α ~ N(0, 0.1²)
    alphas = shifts / (255 * STATS["eigval"].sqrt())
    assert 0.09 < float(alphas.std()) < 0.11
    # convdata.py makes a new pool for every batch: more distinct draws than a 1,024-vector pool
    assert len(torch.unique(alphas[:, 0].round(decimals=5))) > 1024
