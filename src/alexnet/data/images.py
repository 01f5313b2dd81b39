"""Images in and out: image files read as uint8 (3, H, W) RGB (`load_image`), JPEG bytes
decoded (`decode_jpegs`, nvjpeg on a CUDA device) and encoded (`encode_jpeg`) for the packed
format of `alexnet prepare`, and normalised network input turned back into a picture
(`display_image`) for the figures."""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from alexnet.errors import DataError


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file as uint8 (3, H, W) RGB.

    Grey and palette images become RGB, alpha is composited on white, CMYK is converted.
    Raises `DataError` naming the file when it cannot be read.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise DataError(f"cannot read image {path}: {err.strerror or err}; check the "
                        "path") from None
    if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
        raise DataError(f"cannot read image {path}: not a regular file (a folder, FIFO or "
                        "device); pass image files")
    return _read(path, str(path), hint="remove or replace the file (`alexnet prepare` skips "
                 "such files and lists them)")


def decode_image(data: bytes, name: str = "image", *, max_pixels: int | None = None
                 ) -> torch.Tensor:
    """Image file bytes (an upload) as uint8 (3, H, W) RGB, converted as `load_image` does.

    `max_pixels`: refuse a larger image before decoding it (its header gives the size), so a
    small file that decodes to a huge image costs nothing. Raises `DataError` naming `name`.
    """
    if not data:
        raise DataError(f"{name} is empty: send an image file (JPEG, PNG, ...)")
    return _read(io.BytesIO(data), name, hint="send a JPEG, PNG or other image file",
                 max_pixels=max_pixels)


def _read(file: str | Path | io.BytesIO, name: str, *, hint: str,
          max_pixels: int | None = None) -> torch.Tensor:
    """PIL's decode of a path or file object, to uint8 (3, H, W) RGB."""
    try:
        with Image.open(file) as img:
            if max_pixels is not None and img.width * img.height > max_pixels:
                raise DataError(f"{name} is {img.width}×{img.height} pixels, more than the "
                                f"{max_pixels:,} allowed; send a smaller image")
            img.load()
            return image_to_tensor(img)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, MemoryError,
            Image.DecompressionBombError) as err:  # the bomb error is not an OSError
        reason = ("not an image file PIL can read" if isinstance(err, UnidentifiedImageError)
                  and not isinstance(file, str | Path) else err)
        raise DataError(f"cannot read image {name}: {reason}; {hint}") from err


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image as uint8 (3, H, W) RGB: grey and palette images become RGB, alpha is
    composited on white, CMYK is converted, 16/32-bit grey is scaled to 8 bits."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA") or img.mode.endswith("a"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode.startswith("I") or img.mode == "F":  # 16/32-bit grey: scale to 8 bits
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max(initial=0) > 255 else 255.0
        img = Image.fromarray((a * 255.0 / top).clip(0, 255).astype(np.uint8), "L")
    rgb = np.asarray(img.convert("RGB"))  # (H, W, 3)
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()


# torchvision.io is imported where it is used: importing torchvision takes seconds, and reading
# Fashion-MNIST, CIFAR-10 or image files (PIL) does not need it.

def decode_jpegs(data: torch.Tensor | list[torch.Tensor], device: str | torch.device = "cpu"):
    """torchvision's JPEG decoder (nvjpeg for a CUDA device): uint8 (3, H, W) RGB, or a list."""
    from torchvision.io import ImageReadMode, decode_jpeg

    if torch.device(device).type == "cuda":
        # nvJPEG's hardware decoder does not wait for work already queued on the stream: it
        # can write its outputs into blocks the caching allocator just freed while queued
        # kernels still read them (NaN losses in training, seen on an H200). Drain the stream.
        torch.cuda.current_stream(torch.device(device)).synchronize()
    with warnings.catch_warnings():  # torchvision 0.29 deprecates it for torchcodec; it is
        warnings.simplefilter("ignore", DeprecationWarning)  # still there and decodes on GPU
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def encode_jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """uint8 (3, H, W) -> uint8 (n_bytes,) JPEG."""
    from torchvision.io import encode_jpeg as _encode

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _encode(image, quality=quality)


def display_image(x: torch.Tensor, normalization: dict[str, torch.Tensor] | None = None
                  ) -> torch.Tensor:
    """A normalised (C, s, s) network input back to a picture in [0, 1]: the loaders'
    normalisation (`DataBundle.normalization`, {"mean", "std"}) undone, then min-max scaled."""
    x = x.detach().float().cpu()
    if normalization:
        std, mean = normalization.get("std"), normalization.get("mean")
        if std is not None:
            x = x * _fit(std, x)
        if mean is not None:
            x = x + _fit(mean, x)
    lo, hi = x.amin(), x.amax()
    return (x - lo) / (hi - lo).clamp_min(1e-8)


def _fit(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A (C,1,1) or (C,H,W) statistic brought to x's (C, s, s) (a mean image is centre-cropped)."""
    t = torch.as_tensor(t, dtype=torch.float32)
    if t.dim() == 3 and t.shape[-1] > 1 and t.shape[-2:] != x.shape[-2:]:
        h, w = t.shape[-2:]
        s0, s1 = x.shape[-2:]
        top, left = max((h - s0) // 2, 0), max((w - s1) // 2, 0)
        t = t[:, top:top + s0, left:left + s1]
        if t.shape[-2:] != x.shape[-2:]:
            t = t.mean(dim=(1, 2), keepdim=True)
    return t
