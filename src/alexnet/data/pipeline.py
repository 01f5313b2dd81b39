"""The batch transform shared by every path (in-memory, CPU workers, GPU decode, predict):
uint8 (B, C, H, W) -> float (B, C, s, s) on the batch's device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from alexnet.data.augment import (
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
from alexnet.errors import DataError


@dataclass
class Plan:
    """The random draws of one training batch (`Pipeline.plan`)."""

    tops: torch.Tensor  # int64 (B,)
    lefts: torch.Tensor  # int64 (B,)
    flips: torch.Tensor | None  # bool (B,), None without flipping
    alphas: torch.Tensor | None  # (B, 3) lighting α, None without lighting
    shift: torch.Tensor | None  # (B, 3) the RGB shift of the α (`lighting_shift`)
    divisor: float  # convdata.py's 1 + noise coefficient while the noise is on, else 1


@dataclass
class Pipeline:
    """resize -> channels -> PCA lighting -> normalise -> crop + flip (train) or views (eval).

    §2's mean image is of the whole resize×resize image, so training crops and flips the mean
    image with the same window as the image (normalising is pixel-wise, so cropping first gives
    the same numbers on ~23% fewer pixels at 224 of 256); lighting adds one RGB shift per image.
    Training crops the uint8 batch and converts each patch once (`crop_normalize`).
    """

    resize: int
    crop: int | None
    channels: int
    mean: torch.Tensor  # (C, R, R) mean image or (C, 1, 1)
    std: torch.Tensor  # (C, 1, 1)
    flip: bool = False
    lighting_std: float = 0.0
    eigval: torch.Tensor | None = None  # (3,)
    eigvec: torch.Tensor | None = None  # (3, 3)
    chunk: int = 1  # convdata.py: crop and flip shared per chunk of 32 (variant original)
    # convdata.py (variant original): while colour noise is on, training images are divided by
    # 1 + its coefficient (1.1) "so that the overall scale of the training data doesn't become
    # too different from the test data"; test images never are.
    noise_divisor: float = 1.0
    # The mean image's window: "crop" cuts (and mirrors) it with each crop (§2's mean of the
    # whole image, pixel for pixel); "center": convdata.py subtracts the centre crop of the mean
    # image from every training patch, wherever it was cut and whether it was flipped.
    mean_window: str = "crop"

    @property
    def size(self) -> int:
        return self.crop or self.resize

    def to(self, device: torch.device | str) -> Pipeline:
        move = {k: getattr(self, k).to(device) for k in ("mean", "std", "eigval", "eigvec")
                if getattr(self, k) is not None}
        return Pipeline(**{**self.__dict__, **move})

    def normalized(self, x: torch.Tensor, alphas: torch.Tensor | None = None) -> torch.Tensor:
        """uint8/float (B, C, H, W) -> float (B, channels, R, R): fitted to resize×resize,
        PCA-lit with `alphas` (B, 3) if given, normalised.

        With a per-channel mean, small images are normalised before they are enlarged: the
        same numbers (resizing is linear with weights summing to 1), fewer passes over memory.
        """
        x = x.float()
        if x.shape[1] > self.channels:
            x = to_channels(x, self.channels)
        early = (x.shape[1] == self.channels and self.mean.shape[-1] == 1
                 and x.shape[-2] * x.shape[-1] <= self.resize ** 2)
        if not early:
            x = to_channels(fit_square(x, self.resize), self.channels)
        if alphas is not None and self.eigval is not None and self.channels == 3:
            x = pca_lighting(x, alphas, self.eigval, self.eigvec)
        x = normalize(x, self.mean, self.std)
        return fit_square(x, self.resize) if early else x

    def plan(self, gen: torch.Generator, n: int, lighting: bool = True) -> Plan:
        """The random draws of a training batch of `n` images from `gen` (CPU), in a fixed
        order: crop offsets, flips, lighting α."""
        tops, lefts = crop_offsets(gen, n, self.resize, self.size, self.chunk)
        flips = flip_flags(gen, n, self.chunk)
        alphas = lighting_alphas(gen, n, self.lighting_std)
        use_lighting = lighting and self.lighting_std > 0
        shift = None  # (B, 3) PCA lighting, added to the patch before the mean is taken off
        if use_lighting and self.eigval is not None and self.channels == 3:
            shift = lighting_shift(alphas, self.eigval, self.eigvec)
        return Plan(tops, lefts, flips if self.flip else None, alphas if use_lighting else None,
                    shift, self.noise_divisor if use_lighting else 1.0)

    def train(self, x: torch.Tensor, gen: torch.Generator, lighting: bool = True) -> torch.Tensor:
        """Augmented, normalised (B, C, crop, crop) with randomness drawn from `gen` (CPU)."""
        return self.apply(x, self.plan(gen, x.shape[0], lighting))

    def apply(self, x: torch.Tensor, plan: Plan) -> torch.Tensor:
        """`train` with its draws given: uint8/float (B, C, H, W) -> float (B, C, crop, crop)."""
        crop, divisor = self.size, plan.divisor
        if crop == self.resize and not self.flip:  # no spatial augmentation
            return (self.normalized(x, plan.alphas) / divisor).contiguous()
        if not self.takes_as_loaded(x.shape, x.dtype):
            x = x.float()
            if x.shape[1] > self.channels:
                x = to_channels(x, self.channels)
            x = to_channels(fit_square(x, self.resize), self.channels)  # (B, C, R, R)
        # else x stays as loaded (uint8 (B, C, R, R)): each patch is converted on its own
        if self.mean_window == "center" and self.mean.shape[-1] != 1:
            out = crop_normalize(x, plan.tops, plan.lefts, crop, torch.zeros_like(self.std),
                                 self.std, plan.flips, plan.shift)
            out = out - center_crop(self.mean, crop) / self.std  # convdata.py's data_mean_crop
        else:  # mean (C, 1, 1), or §2's mean image (C, R, R): the patch's own window of it
            out = crop_normalize(x, plan.tops, plan.lefts, crop, self.mean, self.std,
                                 plan.flips, plan.shift)
        return out / divisor if divisor != 1.0 else out

    def takes_as_loaded(self, shape: torch.Size | tuple[int, ...], dtype: torch.dtype) -> bool:
        """Whether `apply` crops images of this shape straight from their loaded pixels."""
        return shape[1] == self.channels and tuple(shape[-2:]) == (self.resize, self.resize)

    def eval(self, x: torch.Tensor, views: str = "center") -> torch.Tensor:
        """(B, C, s, s) centre views or (B, 10, C, s, s) ten views (§4.1)."""
        return self.views(self.normalized(x), views)

    def views(self, x: torch.Tensor, views: str) -> torch.Tensor:
        if views == "center":
            return center_crop(x, self.size).contiguous()
        if views == "ten":
            return ten_views(x, self.size).contiguous()
        raise ValueError(f"views must be 'center' or 'ten', got {views!r}")

    def normalization(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.detach().cpu().clone(), "std": self.std.detach().cpu().clone()}

    def preprocess(self) -> dict[str, Any]:
        return {"resize": int(self.resize), "crop": None if self.crop is None else int(self.crop),
                "channels": int(self.channels), "size": int(self.size)}

    @classmethod
    def from_saved(cls, normalization: dict[str, torch.Tensor],
                   preprocess: dict[str, Any]) -> Pipeline:
        """The eval-time pipeline of a checkpoint's `data` entry."""
        try:
            return cls(resize=int(preprocess["resize"]), crop=preprocess.get("crop"),
                       channels=int(preprocess["channels"]), mean=normalization["mean"].float(),
                       std=normalization["std"].float())
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise DataError(f"the checkpoint's data.preprocess / data.normalization are "
                            f"incomplete or malformed ({type(err).__name__}: {err}); it was not "
                            "written by this version of `alexnet train`") from None

