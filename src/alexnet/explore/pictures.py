"""Tensors as the page's pictures: PNG/JPEG bytes, a layer's maps tiled into one atlas per
tower, a map as a heat overlay with transparency, conv1's kernels tiled (Fig. 3)."""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

MIN_CELL = 24  # px: small maps (pool5's 6×6) are enlarged to at least this
GAP = 1  # px between tiles


def png(image: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) -> PNG bytes (fast compression)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def jpeg(image: torch.Tensor, side: int | None = None) -> bytes:
    """uint8 (C, H, W) -> JPEG bytes, the longer side at most `side`."""
    x = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    img = Image.fromarray(x.permute(1, 2, 0).contiguous().numpy())
    if side is not None and max(img.size) > side:
        img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=88)
    return buf.getvalue()


def hwc(image: torch.Tensor) -> np.ndarray:
    """uint8 (3, H, W) tensor -> (H, W, 3) array."""
    return image.permute(1, 2, 0).contiguous().numpy()


def grid_shape(count: int) -> tuple[int, int]:
    """(columns, rows) of a nearly square grid of `count` tiles."""
    cols = max(1, math.ceil(math.sqrt(count)))
    return cols, max(1, math.ceil(count / cols))


def cell_scale(side: int) -> int:
    return max(1, math.ceil(MIN_CELL / max(side, 1)))


def atlas(maps: torch.Tensor, top: float) -> np.ndarray:
    """Maps (C, h, w) as one grey uint8 picture of C tiles (grid_shape(C)), each enlarged by
    cell_scale(h); values over `top` (the layer's largest, so that towers compare) are white."""
    c, h, w = maps.shape
    cols, rows = grid_shape(c)
    k = cell_scale(h)
    tiles = (maps.clamp_min(0) / max(top, 1e-12)).clamp(0, 1)  # (C, h, w)
    tiles = tiles.repeat_interleave(k, 1).repeat_interleave(k, 2)  # (C, hk, wk)
    ch, cw = h * k + GAP, w * k + GAP
    out = np.full((rows * ch - GAP, cols * cw - GAP), 40, np.uint8)
    pix = (tiles * 255).round().to(torch.uint8).numpy()
    for i in range(c):
        r, q = divmod(i, cols)
        out[r * ch:r * ch + h * k, q * cw:q * cw + w * k] = pix[i]
    return out


def heat(values: torch.Tensor, size: int, signed: bool = False) -> np.ndarray:
    """A map (h, w) as a size×size RGBA overlay: scaled to its largest |value|, resized
    bilinearly, coloured black-red-yellow-white, transparent where small. `signed`: blue
    where negative (occlusion that raises the class)."""
    v = values.float()[None, None]
    v = torch.nn.functional.interpolate(v, size=(size, size), mode="bilinear",
                                        align_corners=False)[0, 0]
    top = float(v.abs().max())
    v = v / top if top > 0 else v
    pos = v.clamp(0, 1)
    rgba = torch.stack([(3 * pos).clamp(0, 1), (3 * pos - 1).clamp(0, 1),
                        (3 * pos - 2).clamp(0, 1), 0.85 * pos.sqrt()], dim=-1)
    if signed:
        neg = (-v).clamp(0, 1)
        rgba[..., 2] = torch.maximum(rgba[..., 2], neg)
        rgba[..., 3] = torch.maximum(rgba[..., 3], 0.85 * neg.sqrt())
    return (rgba * 255).round().to(torch.uint8).numpy()


def kernel_atlas(tiles: torch.Tensor, scale: int = 4, cols: int = 8) -> np.ndarray:
    """Kernels as pictures (K, 3, kh, kw) in [0, 1] -> one RGB grid, each enlarged `scale`×."""
    k, _, kh, kw = tiles.shape
    rows = max(1, math.ceil(k / cols))
    ch, cw = kh * scale + 2, kw * scale + 2
    out = np.full((rows * ch, cols * cw, 3), 255, np.uint8)
    pix = (tiles.repeat_interleave(scale, 2).repeat_interleave(scale, 3) * 255).round()
    pix = pix.to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i in range(k):
        r, q = divmod(i, cols)
        out[r * ch + 1:r * ch + 1 + kh * scale, q * cw + 1:q * cw + 1 + kw * scale] = pix[i]
    return out
