"""Pretrained ImageNet weights as ordinary checkpoints.

`weights.checkpoint.load_checkpoint` accepts, besides its own files, the word `torchvision`
(torchvision's AlexNet_Weights.IMAGENET1K_V1, read from the torch hub cache; its URL, hash,
categories, published errors and preprocessing come from torchvision's public weights API) and
any file holding a plain state dict in torchvision's AlexNet key layout (features.0.weight ...
classifier.6.bias), e.g. the hub file alexnet-owt-7be5be79.pth. This module turns such a state
dict into the checkpoint layout (docs/ARCHITECTURE.md), so every command that takes a checkpoint
takes pretrained weights. Such a checkpoint has no data of its own (`config.data.source` None).

Preprocessing: torchvision evaluates with Resize(256) + CenterCrop(224) + ToTensor +
Normalize(mean, std). The loaders' resize-shorter-side-to-256, central 256² square and centre
224 crop cut the same pixels: torchvision's crop offset round((L - 224) / 2) equals ours,
round((L - 256) / 2) + 16 (an even integer leaves Python's round unchanged). Both resize
bilinearly with antialiasing; torchvision rounds the resized image to uint8 (and its reference
evaluation resizes PIL images), while `predict` resizes in float and the file loaders round the
256² square to uint8: differences of a rounding step per pixel. ToTensor + Normalize on [0, 1]
equals (x - 255·mean) / (255·std) on 0..255 pixels, which is the stored normalisation below.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from alexnet.data import sources
from alexnet.errors import CheckpointError
from alexnet.models import create_model

TORCHVISION = "torchvision"  # the word that names torchvision's weights on the command line
WNIDS_FILE = Path(sources.__file__).with_name("ilsvrc2012_wnids.txt")


def torchvision_weights() -> Any:
    """torchvision's `AlexNet_Weights.IMAGENET1K_V1`: its URL, `meta` (categories, published
    metrics) and `transforms()`, read through torchvision's public API."""
    # imported here: torchvision takes seconds to import and only pretrained weights need it
    from torchvision.models import AlexNet_Weights

    return AlexNet_Weights.IMAGENET1K_V1


def torchvision_source() -> str:
    """The name the checkpoint's `pretrained.from` gives torchvision's weights."""
    return f"torchvision {torchvision_weights()}"


def hash_prefix(url: str) -> str:
    """The SHA-256 prefix torch.hub reads from a weights file's name
    (<name>-<first hex digits of its SHA-256>.pth) and checks on download."""
    found = torch.hub.HASH_REGEX.search(Path(urlparse(url).path).name)
    if found is None:
        raise CheckpointError(f"{url} names no hash prefix (<name>-<sha256 prefix>.pth)")
    return found.group(1)


def published_errors() -> dict[str, float]:
    """The top-1/top-5 errors torchvision publishes for its weights
    (`meta["_metrics"]["ImageNet-1K"]`: on the 50,000 ILSVRC-2012 validation images, centre
    224 crop of the 256 resize)."""
    acc = torchvision_weights().meta["_metrics"]["ImageNet-1K"]
    return {"top1_err": round(1 - acc["acc@1"] / 100, 6),
            "top5_err": round(1 - acc["acc@5"] / 100, 6)}


def torchvision_preprocess() -> dict[str, int]:
    """torchvision's evaluation sizes (`transforms()`: Resize(256) + CenterCrop(224), §2's 256
    resize and §4.1's 224 centre patch) as a checkpoint's `data.preprocess`."""
    t = torchvision_weights().transforms()
    crop = int(t.crop_size[0])
    return {"resize": int(t.resize_size[0]), "crop": crop, "channels": 3, "size": crop}


def hub_file() -> Path:
    """Where torch.hub keeps torchvision's AlexNet weights ($TORCH_HOME/hub/checkpoints/...)."""
    name = Path(urlparse(torchvision_weights().url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def torchvision_file() -> Path:
    """The cached file of torchvision's AlexNet weights, downloaded first when missing."""
    path = hub_file()
    if path.is_file():
        return path
    url = torchvision_weights().url
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # writes a temporary file next to `path` and renames it once the hash prefix matches
        torch.hub.download_url_to_file(url, str(path), hash_prefix=hash_prefix(url),
                                       progress=True)
    except Exception as err:  # URLError, HTTPError, OSError, hash mismatch
        raise CheckpointError(
            f"torchvision's pretrained AlexNet weights ({url}) are not in the torch "
            f"hub cache and could not be downloaded ({type(err).__name__}: {err}); run once "
            f"with internet access, or copy the file to {path} ($TORCH_HOME/hub/checkpoints, "
            "default ~/.cache/torch/hub/checkpoints)") from err
    return path


def is_state_dict(obj: Any) -> bool:
    """True for a plain state dict: a non-empty mapping of names to tensors."""
    return (isinstance(obj, dict) and bool(obj)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def imagenet_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 wnids in sorted order: the class indices of ImageNet models."""
    text = WNIDS_FILE.read_text(encoding="utf-8")
    return sorted(w for w in text.split() if sources.WNID.match(w))


def imagenet_normalization() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet mean and std (`transforms()`, for pixels in [0, 1]) in the
    loaders' 0..255 units, (3, 1, 1) each."""
    t = torchvision_weights().transforms()
    return {"mean": (torch.tensor(t.mean) * 255).reshape(3, 1, 1),
            "std": (torch.tensor(t.std) * 255).reshape(3, 1, 1)}


def check_layout(state_dict: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                 path: str | Path) -> None:
    """One `CheckpointError` naming the missing, unexpected and misshapen weights, if any."""
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k} is {tuple(state_dict[k].shape)}, expected {tuple(v.shape)}"
              for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        return
    problems = []
    for what, items in (("missing", missing), ("unexpected", unexpected), ("shapes", shapes)):
        if items:
            more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
            problems.append(f"{what}: {', '.join(items[:3])}{more}")
    raise CheckpointError(
        f"{path} is not an alexnet checkpoint, and as a plain state dict it does not have "
        "torchvision's AlexNet layout (features.0.weight ... classifier.6.bias, 1000 classes): "
        + "; ".join(problems))


def _sha256_prefix(path: Path, n: int = 8) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()[:n]


def checkpoint_from_state_dict(state_dict: dict[str, torch.Tensor], path: str | Path
                               ) -> dict[str, Any]:
    """The checkpoint (without its "format" key, which `weights.checkpoint` adds) of `owt` with
    torchvision's AlexNet weights read from `path`: its model, the 1000 wnids, torchvision's
    preprocessing and normalisation, and where the weights came from. The published errors
    ("expected") are attached only to torchvision's own file (its SHA-256 prefix)."""
    with torch.device("meta"):  # the names and shapes only: nothing allocated or initialised
        model = create_model("owt", num_classes=1000)
    check_layout(state_dict, model.state_dict(), path)
    pretrained: dict[str, Any] = {"from": "a state dict in torchvision's AlexNet layout",
                                  "file": str(path)}
    if (Path(path).is_file()
            and _sha256_prefix(Path(path)) == hash_prefix(torchvision_weights().url)):
        pretrained.update({"from": torchvision_source(), "expected": published_errors()})
    config = dict(model.config)
    preprocess = torchvision_preprocess()
    return {
        "model": {"config": config, "state_dict": dict(state_dict)},
        "classes": imagenet_wnids(),
        "data": {"normalization": imagenet_normalization(), "preprocess": preprocess},
        # no data of its own: commands that read data need --data (ILSVRC-2012's 1000 wnids)
        "config": {"data": {"source": None, "resize": preprocess["resize"],
                            "crop": preprocess["crop"], "channels": 3, "flip": False,
                            "mean": "channel"},
                   "model": dict(config)},
        "pretrained": pretrained,
    }
