"""Augmentation and preprocessing as batched tensor functions (CPU and GPU alike).

Every function takes a batch (B, C, H, W) and per-image parameters drawn beforehand, so the
same code runs in tests, on CPU DataLoader batches and on GPU-decoded batches, and the random
draws can be a pure function of (seed, epoch, batch index, rank) (`batch_generator`).
Pixel values are floats in 0..255 units until `normalize`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# ITU-R 601-2 luma, as torchvision's rgb_to_grayscale
LUMA = (0.2989, 0.587, 0.114)


def batch_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded from a tuple of ints, e.g. (seed, epoch, batch, rank)."""
    state = np.random.SeedSequence([int(k) & 0xFFFFFFFF for k in key]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def resize_shorter(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of float (B, C, H, W) so that the shorter side is `size`.

    Antialiased when shrinking (as torchvision's Resize); the longer side follows
    torchvision's rounding: int(size * long / short).
    """
    h, w = x.shape[-2:]
    if min(h, w) == size:
        return x
    out = (size, int(size * w / h)) if h <= w else (int(size * h / w), size)
    return F.interpolate(x, size=out, mode="bilinear", align_corners=False,
                         antialias=size < min(h, w))


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Central size×size patch of (..., H, W) (torchvision's CenterCrop offsets)."""
    h, w = x.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top:top + size, left:left + size]


def fit_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """§2: shorter side -> `size`, then the central size×size patch.

    (C, H, W) or (B, C, H, W), uint8 or float; uint8 in -> uint8 out (rounded).
    """
    single = x.dim() == 3
    batch = x[None] if single else x
    if batch.shape[-2:] != (size, size):
        out = center_crop(resize_shorter(batch.float(), size), size)
        if x.dtype == torch.uint8:
            out = out.round_().clamp_(0, 255).to(torch.uint8)
        batch = out
    return batch[0] if single else batch


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, C, H, W) float -> (B, channels, H, W): grey is repeated, RGB -> luma."""
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if c == 3 and channels == 1:
        w = torch.tensor(LUMA, dtype=x.dtype, device=x.device)
        return (x * w[None, :, None, None]).sum(1, keepdim=True)
    raise ValueError(f"cannot convert {c} channels to {channels}")


def crop_offsets(gen: torch.Generator, n: int, size: int, crop: int,
                 chunk: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform (top, left) offsets, int64 (n,) each; images in a chunk share one (convdata.py)."""
    m = -(-n // chunk)
    tops = torch.randint(0, size - crop + 1, (m,), generator=gen)
    lefts = torch.randint(0, size - crop + 1, (m,), generator=gen)
    return tops.repeat_interleave(chunk)[:n], lefts.repeat_interleave(chunk)[:n]


def flip_flags(gen: torch.Generator, n: int, chunk: int = 1) -> torch.Tensor:
    """bool (n,): flip with probability 1/2; images in a chunk share one flag."""
    m = -(-n // chunk)
    return (torch.rand(m, generator=gen) < 0.5).repeat_interleave(chunk)[:n]


def batch_crop(x: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, crop: int,
               flips: torch.Tensor | None = None, *, gather: bool | None = None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, crop, crop) of x's dtype: image i's patch starts at (tops[i],
    lefts[i]), and is mirrored left-right where `flips` (B,) is True. `tops`, `lefts` and
    `flips` live on the CPU (drawn there), so no device sync is needed.

    On CUDA one gather does crop and flip (one kernel); on the CPU each patch is a slice copied
    whole (memcpy-like, ~10x the gather's speed). `gather` forces either way (tests)."""
    flips = torch.zeros(len(tops), dtype=torch.bool) if flips is None else flips.cpu()
    if bool((tops == tops[0]).all() and (lefts == lefts[0]).all() and (flips == flips[0]).all()):
        t, l = int(tops[0]), int(lefts[0])  # one window for all (e.g. one chunk): a slice
        out = x[..., t:t + crop, l:l + crop]
        return out.flip(-1) if bool(flips[0]) else out
    if gather if gather is not None else x.is_cuda:
        return _gather_crop(x, tops, lefts, crop, flips)
    out = x.new_empty(x.shape[0], x.shape[1], crop, crop)
    for i, (t, l, f) in enumerate(zip(tops.tolist(), lefts.tolist(), flips.tolist(),
                                      strict=True)):
        patch = x[i, :, t:t + crop, l:l + crop]
        out[i] = patch.flip(-1) if f else patch
    return out


def _gather_crop(x: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, crop: int,
                 flips: torch.Tensor) -> torch.Tensor:
    """batch_crop as one gather (any device)."""
    ar = torch.arange(crop)
    cols = torch.where(flips[:, None], crop - 1 - ar, ar)  # (B, crop): reversed when flipped
    rows = (tops[:, None] + ar).to(x.device)[:, None, :, None]  # (B, 1, crop, 1)
    cols = (lefts[:, None] + cols).to(x.device)[:, None, None, :]  # (B, 1, 1, crop)
    b = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
    c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return x[b, c, rows, cols]


def crop_normalize(x: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, crop: int,
                   mean: torch.Tensor, std: torch.Tensor, flips: torch.Tensor | None = None,
                   shift: torch.Tensor | None = None, *,
                   per_image: bool | None = None) -> torch.Tensor:
    """uint8 or float (B, C, H, W) -> float (B, C, crop, crop): each image's patch (and mirror,
    as `batch_crop`) plus its RGB shift `shift` (B, C) (`lighting_shift`), minus the same
    window of `mean` (C, H, W) (§2's mean image, mirrored with the patch) or minus mean
    (C, 1, 1), divided by `std` (C, 1, 1).

    The numbers of §2's order (light, normalise, then crop and flip: `pca_lighting`,
    `normalize`, `batch_crop`) on the patch's pixels only. On the CPU (or `per_image=True`)
    each image is converted straight from its uint8 slice and normalised while it is in cache:
    one pass over the output instead of five over the batch; on CUDA the batched ops.
    """
    n = x.shape[0]
    flips = torch.zeros(n, dtype=torch.bool) if flips is None else flips.cpu()
    pixel_mean = mean.shape[-1] != 1
    unit_std = bool((std == 1).all())
    if not (per_image if per_image is not None else not x.is_cuda):
        out = batch_crop(x, tops, lefts, crop, flips).float()
        if shift is not None:
            out = out + shift[:, :, None, None]
        if pixel_mean:
            mean = batch_crop(mean.expand(n, -1, -1, -1), tops, lefts, crop, flips)
        out = out - mean
        return out if unit_std else out / std
    out = torch.empty(n, x.shape[1], crop, crop, device=x.device)
    width = mean.shape[-1]
    mirrored = mean.flip(-1) if pixel_mean and bool(flips.any()) else mean
    for i, (t, l, f) in enumerate(zip(tops.tolist(), lefts.tolist(), flips.tolist(),
                                      strict=True)):
        patch, o = x[i, :, t:t + crop, l:l + crop], out[i]  # (C, crop, crop)
        o.copy_(patch.flip(-1) if f else patch)  # uint8 -> float (a mixed-type add is slower)
        if shift is not None:
            o.add_(shift[i, :, None, None])
        if not pixel_mean:
            o.sub_(mean)
        elif f:  # the mirror of mean's window [l, l + crop) is mirrored's [W-l-crop, W-l)
            o.sub_(mirrored[:, t:t + crop, width - l - crop:width - l])
        else:
            o.sub_(mean[:, t:t + crop, l:l + crop])
        if not unit_std:
            o.div_(std)
    return out


def five_views(x: torch.Tensor, crop: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, 5, C, crop, crop): top-left, top-right, bottom-left, bottom-right,
    centre (torchvision's FiveCrop order)."""
    h, w = x.shape[-2:]
    views = [x[..., :crop, :crop], x[..., :crop, w - crop:], x[..., h - crop:, :crop],
             x[..., h - crop:, w - crop:], center_crop(x, crop)]
    return torch.stack(views, dim=1)


def ten_views(x: torch.Tensor, crop: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, 10, C, crop, crop): §4.1's test-time views, the five patches of the
    image and the five of its mirror image (torchvision's TenCrop order)."""
    return torch.cat([five_views(x, crop), five_views(x.flip(-1), crop)], dim=1)


def lighting_alphas(gen: torch.Generator, n: int, std: float) -> torch.Tensor:
    """α (n, 3) ~ N(0, std²), drawn afresh for every image each time it is used (§4.1)."""
    return torch.randn(n, 3, generator=gen) * std


def pca_lighting(x: torch.Tensor, alphas: torch.Tensor, eigval: torch.Tensor,
                 eigvec: torch.Tensor, scale: float = 255.0) -> torch.Tensor:
    """§4.1: add [p1 p2 p3][α1λ1 α2λ2 α3λ3]ᵀ to every pixel of each RGB image.

    x (B, 3, H, W); alphas (B, 3); eigval (3,) and eigvec (3, 3) (columns p_i) of the RGB
    covariance of pixels in [0, 1]; `scale` maps the shift to x's units (255 for 0..255).
    """
    shift = lighting_shift(alphas, eigval, eigvec, scale).to(x.device, x.dtype)  # (B, 3)
    return x + shift[:, :, None, None]


def lighting_shift(alphas: torch.Tensor, eigval: torch.Tensor, eigvec: torch.Tensor,
                   scale: float = 255.0) -> torch.Tensor:
    """§4.1's per-image RGB shift scale·[p1 p2 p3][α1λ1 α2λ2 α3λ3]ᵀ, (B, 3) on eigval's device
    (`pca_lighting` adds it to every pixel)."""
    alphas = alphas.to(eigval.device, eigval.dtype)
    return scale * ((alphas * eigval) @ eigvec.to(eigval.dtype).T)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std; mean (C, H, W) (§2's mean image) or (C, 1, 1); std (C, 1, 1)."""
    return (x - mean) / std
