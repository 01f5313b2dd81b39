"""`DataConfig`: the run config's `data:` section, declared once (each field a `Key`), checked
and resolved per source."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alexnet.data.memory import channels as memory_channels
from alexnet.data.memory import is_memory
from alexnet.errors import ConfigError
from alexnet.schema import BOOL, Key, Rule, is_whole, keys_of, number, one_of, option, whole

SMALL_DATASETS = ("fashion-mnist", "cifar10")  # kept in memory as one uint8 tensor
IMAGE_SIZE = 224  # §4.1: the network sees 224×224 patches (the run config's model.image_size)
SMALL_RESIZE = 224  # d2l: 28 -> 224 (and 32 -> 224 for CIFAR-10) when a crop is asked for


def cache_root() -> Path:
    """The default data root: $ALEXNET_CACHE, else $XDG_CACHE_HOME/alexnet, else
    ~/.cache/alexnet (always absolute)."""
    if os.environ.get("ALEXNET_CACHE"):
        return Path(os.environ["ALEXNET_CACHE"]).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return (base / "alexnet").absolute()


def resize_for_crop(source: Any, crop: int) -> int:
    """The side images are brought to before a `crop`: §2's 256 for 224 (same ratio for other
    crops) on image trees; `SMALL_RESIZE` for the small datasets."""
    return SMALL_RESIZE if source in SMALL_DATASETS else round(crop * 256 / 224)


SIDE = whole(1, 65536)
_SOURCE = Rule("fashion-mnist, cifar10 or a folder path (an image tree or a folder made by "
               "`alexnet prepare`)", lambda v: isinstance(v, str) and bool(v))


@dataclass
class DataConfig:
    """Where the images come from and how they are turned into training batches.

    `None` fields are resolved per source by `resolved()`. In a run config the sizes follow
    `model.image_size` (`alexnet.train.run_config.derive_sizes`).
    """

    source: str | None = option("fashion-mnist", _SOURCE, "the default recipe's dataset")
    root: str | None = option(None, Rule("a folder path", lambda v: isinstance(v, str) and
                                         bool(v)).or_null(),
                              "download/cache folder of torchvision datasets and statistics; "
                              "null = cache_root(): absolute, so a file planted in the working "
                              "folder is never read")
    resize: int | None = option(None, SIDE.or_null(),
                                "side the images are brought to; null: model.image_size "
                                "without a crop, §2's 256 for a 224 crop on image trees")
    crop: int | None = option(None, SIDE.or_null(),
                              "random (train) / centre (eval) crop, §4.1; null = no crop. In a "
                              "run config also true/false: crop model.image_size or not; unset "
                              "= a crop on image trees, none on fashion-mnist/cifar10")
    flip: bool | None = option(None, Rule("null, true or false",
                                                lambda v: v is None or BOOL(v)),
                               "§4.1 horizontal reflections; null = on when there is a crop")
    lighting: float = option(0.0, number("a number >= 0 (0.1 in the paper; 0 = off)",
                                         lambda v: v >= 0),
                             "§4.1 PCA colour noise: the std of α")
    channels: int | None = option(None, Rule("null, 1 or 3", lambda v: v is None or (
                                      is_whole(v) and v in (1, 3))),
                                  "null = 1 for fashion-mnist, else 3")
    variant: str = option("paper", one_of("paper", "original"),
                          "original: convdata.py's chunked crops, sqrt(lambda) noise, /1.1, "
                          "mean (docs/paper-facts.md)")
    mean: str = option("auto", one_of("auto", "pixel", "channel", "none"),
                       "pixel: §2's mean image; channel: mean/std per channel; auto = channel "
                       "for fashion-mnist/cifar10, else pixel")
    workers: int | None = option(None, whole(0, 65536).or_null(),
                                 "DataLoader workers; null = min(8, cores)")
    val_fraction: float = option(0.1, number("a number in [0, 1)", lambda v: 0 <= v < 1),
                                 "held out per class of a tree without a val/ split")
    stats_images: int = option(10000, whole(1),
                               "images sampled for the mean/PCA of an unprepared tree")
    decode: str = option("auto", one_of("auto", "cpu", "cuda"),
                         "packed data: auto/cuda = nvjpeg batch decode on CUDA; cpu = DataLoader "
                         "worker processes")
    chunk: int = option(32, whole(1),
                        "variant original: images sharing one crop and flip (convdata.py)")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> DataConfig:
        """Build from a recipe's `data:` mapping; unknown keys raise `ConfigError`."""
        d = dict(d or {})
        unknown = sorted(set(d) - set(DATA_KEYS))
        if unknown:
            raise ConfigError(f"unknown data option(s) {unknown}; valid: {', '.join(DATA_KEYS)}")
        cfg = cls(**d)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check every field; one `ConfigError` with one line per problem (key, value, what
        is allowed)."""
        errors = [p for name, key in DATA_KEYS.items()
                  if (p := key.problem(f"data.{name}", getattr(self, name)))]
        if not errors and self.crop is not None and self.resize is not None \
                and self.crop > self.resize:
            errors.append(f"data.crop={self.crop} is larger than data.resize={self.resize}: "
                          "expected crop <= resize")
        if errors:
            raise ConfigError("\n".join(errors))

    @property
    def small(self) -> bool:
        return self.source in SMALL_DATASETS or is_memory(str(self.source))

    def resolved(self) -> DataConfig:
        """A copy with every `None` default filled in for this source."""
        r = dataclasses.replace(self)
        if r.root is None:
            r.root = str(cache_root())
        if r.channels is None:
            r.channels = 1 if r.source == "fashion-mnist" else memory_channels(str(r.source)) or 3
        if r.crop is None and not r.small and r.resize is None:
            r.crop = IMAGE_SIZE  # §4.1: 224 patches of the 256 images
        if r.resize is None:
            r.resize = resize_for_crop(r.source, r.crop) if r.crop else SMALL_RESIZE
        if r.flip is None:
            r.flip = r.crop is not None and r.crop < r.resize
        if r.mean == "auto":
            r.mean = "channel" if r.small else "pixel"  # §2: the per-pixel mean image
        if r.workers is None:
            r.workers = min(8, os.cpu_count() or 1)
        r.validate()
        return r

    def asdict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DATA_KEYS: dict[str, Key] = keys_of(DataConfig)
