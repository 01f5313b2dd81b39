"""Datasets, the paper's preprocessing (§2) and augmentation (§4.1), and loaders.

`DataConfig.from_dict(recipe["data"])` -> `build_loaders(cfg, batch_size=..., device=...,
seed=...)` -> `DataBundle` (train, val, eval_loader(views), classes, normalization,
preprocess). `load_image` and `preprocess_images` give `predict` the same eval transform;
`display_image` turns normalised input back into a picture for the figures.
"""

from alexnet.data.data_config import DataConfig
from alexnet.data.images import decode_image, display_image, image_to_tensor, load_image
from alexnet.data.loaders import (
    DataBundle,
    EvalLoader,
    TrainLoader,
    build_loaders,
    preprocess_images,
)

__all__ = ["DataBundle", "DataConfig", "EvalLoader", "TrainLoader", "build_loaders",
           "decode_image", "display_image", "image_to_tensor", "load_image",
           "preprocess_images"]
