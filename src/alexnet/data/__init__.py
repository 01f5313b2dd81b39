"""Datasets, the paper's preprocessing (§2) and augmentation (§4.1), and loaders.

`DataConfig.from_dict(recipe["data"])` -> `build_loaders(cfg, batch_size=..., device=...,
seed=...)` -> `DataBundle` (train, val, eval_loader(views), classes, normalization,
preprocess). `load_image` and `preprocess_images` give `predict` the same eval transform.
"""

from alexnet.data.config import DataConfig
from alexnet.data.loaders import (
           DataBundle,
           EvalLoader,
           TrainLoader,
           build_loaders,
           preprocess_images,
)
from alexnet.data.sources import load_image

__all__ = ["DataBundle", "DataConfig", "EvalLoader", "TrainLoader", "build_loaders",
           "load_image", "preprocess_images"]
