"""`DataConfig`: the recipe's `data:` mapping, checked and resolved."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alexnet.errors import ConfigError

SMALL_DATASETS = ("fashion-mnist", "cifar10")  # kept in memory as one uint8 tensor
VARIANTS = ("paper", "original")
MEAN_MODES = ("auto", "pixel", "channel", "none")
DECODE_MODES = ("auto", "cpu", "cuda")


def cache_root() -> Path:
    """The default data root: $ALEXNET_CACHE, else $XDG_CACHE_HOME/alexnet, else
    ~/.cache/alexnet (always absolute)."""
    if os.environ.get("ALEXNET_CACHE"):
        return Path(os.environ["ALEXNET_CACHE"]).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return (base / "alexnet").absolute()


@dataclass
class DataConfig:
    """Where the images come from and how they are turned into training batches.

    `None` fields are resolved per source by `resolved()` (see the comments).
    """

    source: str | None = "fashion-mnist"  # fashion-mnist | cifar10 | a folder path
    root: str | None = None  # download/cache folder for torchvision datasets and stats;
    # None = `cache_root()`: absolute, so a file planted in the working folder is never read
    resize: int | None = None  # side images are brought to; trees: round(crop*256/224) (§2: 256)
    crop: int | None = None  # random crop (train) / centre crop (eval); None = no crop
    flip: bool | None = None  # §4.1 horizontal reflections; None = on when there is a crop
    lighting: float = 0.0  # §4.1 PCA colour noise std (0.1 in the paper); 0 = off
    channels: int | None = None  # 1 or 3; None = 1 for fashion-mnist, else 3
    variant: str = "paper"  # "original": convdata.py's chunked crops, √λ noise, /1.1, mean
    mean: str = "auto"  # pixel (§2 mean image) | channel (mean/std per channel) | none
    workers: int | None = None  # DataLoader workers for image files; None = min(8, cores)
    val_fraction: float = 0.1  # held out per class of a tree without a val/ split
    stats_images: int = 10000  # images sampled for mean/PCA of an unprepared tree
    decode: str = "auto"  # packed data on CUDA: auto/cuda = nvjpeg batch decode; cpu = workers
    chunk: int = 32  # variant original: images sharing one crop and flip (convdata.py)
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> DataConfig:
        """Build from a recipe's `data:` mapping; unknown keys raise `ConfigError`."""
        d = dict(d or {})
        valid = [f.name for f in dataclasses.fields(cls) if f.name != "extra"]
        unknown = sorted(set(d) - set(valid))
        if unknown:
            raise ConfigError(f"unknown data option(s) {unknown}; valid: {', '.join(valid)}")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check every field; one `ConfigError` with one line per problem (key, value, what
        is allowed)."""
        errors = []

        def bad(name: str, allowed: str) -> None:
            errors.append(f"data.{name}={getattr(self, name)!r}: expected {allowed}")

        def whole(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def number(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

        if not self.source or not isinstance(self.source, str):
            bad("source", "fashion-mnist, cifar10 or a folder path (an image tree or a folder "
                "made by `alexnet prepare`)")
        if self.root is not None and (not isinstance(self.root, str) or not self.root):
            bad("root", "a folder path")
        for name, lo in (("resize", 1), ("crop", 1), ("workers", 0)):
            value = getattr(self, name)
            if value is not None and not (whole(value) and lo <= value <= 65536):
                bad(name, f"null or a whole number >= {lo}")
        for name in ("stats_images", "chunk"):
            if not (whole(getattr(self, name)) and getattr(self, name) >= 1):
                bad(name, "a whole number >= 1")
        if not (number(self.lighting) and self.lighting >= 0):
            bad("lighting", "a number >= 0 (0.1 in the paper; 0 = off)")
        if not (number(self.val_fraction) and 0 <= self.val_fraction < 1):
            bad("val_fraction", "a number in [0, 1)")
        if self.flip is not None and not isinstance(self.flip, bool):
            bad("flip", "null, true or false")
        for name, choices in (("variant", VARIANTS), ("mean", MEAN_MODES),
                              ("decode", DECODE_MODES)):
            if getattr(self, name) not in choices:
                bad(name, "one of " + ", ".join(choices))
        if self.channels is not None and (not whole(self.channels) or
                                          self.channels not in (1, 3)):
            bad("channels", "null, 1 or 3")
        if not errors and self.crop is not None and self.resize is not None \
                and self.crop > self.resize:
            errors.append(f"data.crop={self.crop} is larger than data.resize={self.resize}: "
                          "expected crop <= resize")
        if errors:
            raise ConfigError("\n".join(errors))

    @property
    def small(self) -> bool:
        return self.source in SMALL_DATASETS or str(self.source).startswith("memory:")

    def resolved(self) -> DataConfig:
        """A copy with every `None` default filled in for this source."""
        r = dataclasses.replace(self)
        if r.root is None:
            r.root = str(cache_root())
        if r.channels is None:
            from alexnet.data.memory import channels  # memory:<name>: the images' channels

            r.channels = 1 if r.source == "fashion-mnist" else channels(str(r.source)) or 3
        if r.resize is None:
            if r.small:
                r.resize = 224  # d2l: 28 -> 224 (and 32 -> 224 for CIFAR-10)
            else:
                r.resize = round(r.crop * 256 / 224) if r.crop else 256  # §2: 256 for 224
        if r.crop is None and not r.small and self.resize is None:
            r.crop = 224  # §4.1: 224 patches of the 256 images
        if r.flip is None:
            r.flip = r.crop is not None and r.crop < r.resize
        if r.mean == "auto":
            r.mean = "channel" if r.small else "pixel"  # §2: the per-pixel mean image
        if r.workers is None:
            r.workers = min(8, os.cpu_count() or 1)
        r.validate()
        return r

    @property
    def out_size(self) -> int:
        """Side of the images the network sees (crop, or resize without a crop)."""
        return int(self.crop or self.resize or 0)

    def asdict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d
