"""Batched augmentation against torchvision's per-image transforms and numpy (§2, §4.1)."""

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from alexnet.data.augment import (
    batch_crop,
    batch_generator,
    center_crop,
    crop_normalize,
    crop_offsets,
    fit_square,
    flip_flags,
    lighting_alphas,
    lighting_shift,
    normalize,
    pca_lighting,
    ten_views,
    to_channels,
)
from alexnet.data.pipeline import Pipeline


def _images(b=6, c=3, h=40, w=40):
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(1)) * 255


def test_batch_crop_equals_random_crop_per_image():
    x = _images(h=40, w=36)
    torch.manual_seed(3)
    params = [T.RandomCrop.get_params(x[0], (24, 24)) for _ in range(len(x))]
    tops = torch.tensor([p[0] for p in params])
    lefts = torch.tensor([p[1] for p in params])
    assert len(set(tops.tolist())) > 1  # the batch really has different windows
    out = batch_crop(x, tops, lefts, 24)
    expected = torch.stack([TF.crop(x[i], *params[i]) for i in range(len(x))])
    assert torch.equal(out, expected)


def test_crop_offsets_cover_the_valid_range_and_chunks_share_one():
    gen = batch_generator(0, 1, 2)
    tops, lefts = crop_offsets(gen, 5000, 256, 224)
    assert tops.min() == 0 and tops.max() == 32 and lefts.max() == 32
    tops, lefts = crop_offsets(batch_generator(1), 70, 256, 224, chunk=32)
    for start in (0, 32, 64):
        assert len(set(tops[start:start + 32].tolist())) == 1
    assert len(set(tops.tolist())) > 1
    flips = flip_flags(batch_generator(2), 64, chunk=32)
    assert flips[:32].all() or not flips[:32].any()


def test_batch_crop_mirrors_only_the_flagged_images():
    x = _images(h=40, w=36)
    flags = torch.tensor([True, False, True, False, False, True])
    zero = torch.zeros(len(x), dtype=torch.int64)
    whole = batch_crop(x[..., :36, :], zero, zero, 36, flags)  # flips alone
    tops, lefts = torch.tensor([0, 3, 16, 7, 1, 9]), torch.tensor([12, 0, 5, 12, 2, 8])
    both = batch_crop(x, tops, lefts, 24, flags)  # crop and flip in one gather
    for i in range(len(x)):
        square = x[i, :, :36, :]
        assert torch.equal(whole[i], TF.hflip(square) if flags[i] else square)
        patch = TF.crop(x[i], int(tops[i]), int(lefts[i]), 24, 24)
        assert torch.equal(both[i], TF.hflip(patch) if flags[i] else patch)
    same = batch_crop(x, zero + 2, zero + 3, 24, torch.ones(len(x), dtype=torch.bool))
    assert torch.equal(same, TF.hflip(x[..., 2:26, 3:27]))  # one window, all flipped: a slice


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_slice_crop_equals_the_gather_on_the_same_draws(dtype):
    """The CPU's per-image slices and the one-gather crop (CUDA's) give the same patches."""
    x = _images(b=16, h=40, w=40).to(dtype)
    gen = batch_generator(0, 3, 7, 0)
    tops, lefts = crop_offsets(gen, 16, 40, 24)
    flips = flip_flags(gen, 16)
    assert flips.any() and not flips.all() and len(set(tops.tolist())) > 1
    sliced = batch_crop(x, tops, lefts, 24, flips, gather=False)
    gathered = batch_crop(x, tops, lefts, 24, flips, gather=True)
    assert sliced.dtype == dtype and torch.equal(sliced, gathered)


@pytest.mark.parametrize("pixel_mean", [True, False])
@pytest.mark.parametrize("lit", [True, False])
def test_crop_normalize_equals_light_normalise_then_crop(pixel_mean, lit):
    """Per image from the uint8 batch (CPU) and batched (CUDA's way), crop_normalize gives
    bit for bit §2's order: lighting and the mean image (or channel mean) and std on the whole
    image, then the patch and its mirror; the mean image is cut with the patch's window."""
    x = _images(b=12, h=32, w=32).to(torch.uint8)
    g = torch.Generator().manual_seed(4)
    mean = torch.rand(3, 32, 32, generator=g) * 255 if pixel_mean else torch.rand(3, 1, 1) * 255
    std = torch.tensor([1.1, 0.7, 2.0]).reshape(3, 1, 1)
    gen = batch_generator(1, 2, 3, 0)
    tops, lefts = crop_offsets(gen, 12, 32, 24)
    flips = flip_flags(gen, 12)
    alphas = lighting_alphas(gen, 12, 0.1)
    eigval = torch.tensor([0.2, 0.02, 0.004])
    eigvec = torch.linalg.qr(torch.randn(3, 3, generator=g))[0]
    shift = lighting_shift(alphas, eigval, eigvec) if lit else None
    lit_x = pca_lighting(x.float(), alphas, eigval, eigvec) if lit else x.float()
    for s in (std, torch.ones(3, 1, 1)):  # std 1 (the mean image alone): no division
        want = batch_crop(normalize(lit_x, mean, s), tops, lefts, 24, flips, gather=True)
        for per_image in (True, False):
            got = crop_normalize(x, tops, lefts, 24, mean, s, flips, shift, per_image=per_image)
            assert got.dtype == torch.float32 and got.is_contiguous()
            torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("size", [(33, 33), (41, 38)])
def test_center_crop_and_ten_views_equal_torchvision(size):
    x = _images(h=size[0], w=size[1])
    assert torch.equal(center_crop(x, 24), torch.stack([T.CenterCrop(24)(im) for im in x]))
    views = ten_views(x, 24)  # (B, 10, C, 24, 24)
    assert views.shape == (6, 10, 3, 24, 24)
    expected = torch.stack([torch.stack(T.TenCrop(24)(im)) for im in x])
    assert torch.equal(views, expected)


def test_fit_square_equals_resize_then_center_crop():
    x = _images(b=1, h=30, w=50)[0]
    ours = fit_square(x, 24)
    theirs = T.CenterCrop(24)(T.Resize(24, antialias=True)(x))
    assert torch.allclose(ours, theirs, atol=1e-3)
    u8 = x.round().to(torch.uint8)
    assert fit_square(u8, 24).dtype == torch.uint8 and fit_square(u8, 24).shape == (3, 24, 24)


def test_pca_lighting_adds_exactly_the_sum_of_alpha_lambda_p():
    x = _images(b=4)
    alphas = torch.randn(4, 3, generator=torch.Generator().manual_seed(5)) * 0.1
    eigval = torch.tensor([0.2175, 0.0188, 0.0045])
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(6)))
    out = pca_lighting(x, alphas, eigval, q)
    a, lam, p = alphas.double().numpy(), eigval.double().numpy(), q.double().numpy()
    for i in range(4):
        shift = 255 * sum(a[i, k] * lam[k] * p[:, k] for k in range(3))  # Σ αk λk pk
        delta = (out[i] - x[i]).double().numpy()  # (3, H, W): the same RGB shift everywhere
        assert np.allclose(delta, shift[:, None, None], atol=1e-3)


def test_to_channels_matches_torchvision_grayscale():
    x = _images()
    assert torch.allclose(to_channels(x, 1), TF.rgb_to_grayscale(x), atol=1e-3)
    grey = x[:, :1]
    assert torch.equal(to_channels(grey, 3), grey.expand(-1, 3, -1, -1))


def _pipeline(**kw):
    args = dict(resize=32, crop=24, channels=3, mean=torch.full((3, 32, 32), 100.0),
                std=torch.full((3, 1, 1), 2.0), flip=True, lighting_std=0.1,
                eigval=torch.tensor([0.2, 0.02, 0.004]), eigvec=torch.eye(3))
    args.update(kw)
    return Pipeline(**args)


def test_pipeline_same_key_same_batch_and_lighting_switch():
    x = (_images(b=8, h=32, w=32)).to(torch.uint8)
    p = _pipeline()
    a = p.train(x, batch_generator(0, 1, 2, 0))
    b = p.train(x, batch_generator(0, 1, 2, 0))
    c = p.train(x, batch_generator(0, 1, 3, 0))
    assert a.shape == (8, 3, 24, 24) and torch.equal(a, b) and not torch.equal(a, c)
    off = p.train(x, batch_generator(0, 1, 2, 0), lighting=False)
    shift = (a - off).flatten(2)  # lighting: one RGB shift per image, the only difference
    assert shift.abs().max() > 0
    assert torch.allclose(shift, shift[:, :, :1].expand_as(shift), atol=1e-4)


def test_training_batch_equals_normalise_then_crop_and_flip():
    """Cropping before normalising must give §2's order's numbers: the mean image is cut with
    the image's own window and mirrored with it."""
    x = _images(b=8, h=40, w=44).to(torch.uint8)
    mean = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(5)) * 255
    p = _pipeline(mean=mean)
    out = p.train(x, batch_generator(0, 1, 2, 0))
    gen = batch_generator(0, 1, 2, 0)  # the same draws, in the same order
    tops, lefts = crop_offsets(gen, 8, 32, 24)
    flips = flip_flags(gen, 8)
    alphas = lighting_alphas(gen, 8, 0.1)
    full = normalize(pca_lighting(fit_square(x.float(), 32), alphas, p.eigval, p.eigvec),
                     mean, p.std)  # (8, 3, 32, 32), §2's order
    want = torch.stack([TF.hflip(TF.crop(full[i], int(tops[i]), int(lefts[i]), 24, 24))
                        if flips[i] else TF.crop(full[i], int(tops[i]), int(lefts[i]), 24, 24)
                        for i in range(8)])
    assert flips.any() and not flips.all()
    assert torch.allclose(out, want, atol=1e-4)


def test_pipeline_without_randomness_is_normalised_centre():
    x = _images(b=2, h=32, w=32).to(torch.uint8)
    p = _pipeline(flip=False, lighting_std=0.0, crop=None)
    out = p.train(x, batch_generator(0))
    assert torch.allclose(out, (x.float() - 100.0) / 2.0)
    assert torch.allclose(p.eval(x), out)
