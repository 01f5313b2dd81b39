"""A trained network with its classes and its own preprocessing (`Classifier`, what
`alexnet.load` returns), and `alexnet predict`: top-k classes with probabilities for images,
without the dataset.

Checkpoints carry the data part's `normalization` and `preprocess`, so an image goes
load_image -> preprocess_images(normalization, preprocess) -> model -> softmax (§4.1's ten views
on request). Pretrained weights (`torchvision`, a torchvision-layout .pth), safetensors exports
and Hugging Face folders are checkpoints too (`alexnet.weights.checkpoint.load_checkpoint`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from PIL import Image
from torch import nn

from alexnet.data import image_to_tensor, load_image, preprocess_images
from alexnet.errors import AlexNetError, CheckpointError, DataError
from alexnet.evaluation.checkpoints import UNCROPPED_TEN_VIEWS, display_names, ten_views_unfair
from alexnet.evaluation.metrics import average_views, over_views, top_classes
from alexnet.weights.checkpoint import Opened, open_checkpoint
from alexnet.weights.portable import WEIGHTS_NAME, save_pretrained
from alexnet.weights.torchvision_weights import TORCHVISION

# What `predict` and `Transforms` take: a path, a PIL image or a uint8 tensor (C, H, W), one or
# a sequence of them; or a uint8 batch (B, C, H, W).
ImageLike = str | os.PathLike | Image.Image | torch.Tensor
HUB_EXTRA = "pip install 'alexnet[hub]'"


class Prediction(NamedTuple):
    """One of an image's top-k classes: its name, probability and index."""

    name: str
    prob: float
    index: int


def as_images(images: ImageLike | Sequence[ImageLike]) -> tuple[list[torch.Tensor], bool]:
    """uint8 (C, H, W) tensors of `images`, and whether a single image was given (a path, a
    PIL image or a (C, H, W) tensor) rather than several (a list or tuple, a (B, C, H, W)
    batch)."""
    several = isinstance(images, list | tuple) or (
        isinstance(images, torch.Tensor) and images.dim() == 4)
    items: list[Any] = list(images) if several else [images]
    if not items:
        raise DataError("no images given")
    return [_as_tensor(x) for x in items], not several


def _as_tensor(image: Any) -> torch.Tensor:
    if isinstance(image, str | os.PathLike):
        return load_image(image)
    if isinstance(image, Image.Image):
        return image_to_tensor(image)
    if isinstance(image, torch.Tensor) and image.dim() == 3 and image.dtype == torch.uint8:
        return image
    what = (f"a {image.dtype} tensor of shape {tuple(image.shape)}"
            if isinstance(image, torch.Tensor) else type(image).__name__)
    raise DataError(f"expected an image path, a PIL image or a uint8 tensor (C, H, W) with "
                    f"values 0..255, got {what}")


class Transforms(nn.Module):
    """A checkpoint's own preprocessing: uint8 images of any size -> the network's input.

    The loaders' evaluation transform (`alexnet.data.preprocess_images`): shorter side to
    `preprocess["resize"]`, the central square, the channels, the stored mean and std, then the
    centre crop, or §4.1's ten views. Returns float (B, C, s, s), or (B, 10, C, s, s) for ten
    views, on the device the module is on (`.to(device)` moves its mean and std).
    """

    def __init__(self, normalization: dict[str, torch.Tensor], preprocess: dict[str, Any],
                 views: str = "center") -> None:
        super().__init__()
        if views not in ("center", "ten"):
            raise DataError(f"views must be 'center' or 'ten', got {views!r}")
        # not in state_dict: the checkpoint keeps them under data.normalization
        self.register_buffer("mean", normalization["mean"].float(), persistent=False)
        self.register_buffer("std", normalization["std"].float(), persistent=False)
        self.preprocess = dict(preprocess)
        self.views = views

    @property
    def normalization(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean, "std": self.std}

    def forward(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        tensors, _ = as_images(images)
        return preprocess_images([t.to(self.mean.device) for t in tensors],
                                 self.normalization, self.preprocess, self.views)

    def extra_repr(self) -> str:
        p = self.preprocess
        return (f"resize={p.get('resize')}, crop={p.get('crop')}, channels={p.get('channels')}, "
                f"mean={tuple(self.mean.shape)}, views={self.views!r}")


class Classifier(nn.Module):
    """A network with its class names and its own preprocessing: what `alexnet.load` returns.

    - `forward(x)` is the network's (float (B, C, s, s) -> logits), and so are `state_dict()`
      and `load_state_dict()` (the checkpoint's keys); the network's attributes are reachable
      on it (`embed`, `config`, `features`, ...);
    - `classes`: the class names (ILSVRC wnids shown as words); `transforms`: uint8 images of
      any size -> the network's input (`Transforms`);
    - `predict(images, topk)`: top-k `Prediction(name, prob, index)` per image;
    - `save_pretrained(dir)`: a Hugging Face folder that `alexnet.load(dir)` opens again.
    """

    def __init__(self, net: nn.Module, classes: Sequence[str], transforms: Transforms,
                 meta: dict[str, Any] | None = None, *, source: str = "", note: str = ""
                 ) -> None:
        super().__init__()
        self.net = net
        self.transforms = transforms
        self.classes = list(classes)
        # what the checkpoint says besides weights and preprocessing, kept for save_pretrained:
        # its stored classes (e.g. wnids), the run's data config, metrics, pretrained origin
        self.meta = dict(meta or {})
        self.source = source
        self.note = note  # something the user should know about these predictions
        self.register_state_dict_post_hook(_drop_net_prefix)
        self.register_load_state_dict_pre_hook(_add_net_prefix)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            net = (self.__dict__.get("_modules") or {}).get("net")
            if name.startswith("_") or net is None or not hasattr(net, name):
                raise AttributeError(f"'Classifier' object and its network "
                                     f"({type(net).__name__}) have no attribute {name!r}"
                                     ) from None
            return getattr(net, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def probabilities(self, images: ImageLike | Sequence[ImageLike]) -> torch.Tensor:
        """Class probabilities (B, classes) on the CPU, §4.1's views averaged."""
        x = self.transforms(images)  # (B, C, s, s) or (B, V, C, s, s) on the device
        return average_views(over_views(self.net, x).float()).cpu()

    def predict(self, images: ImageLike | Sequence[ImageLike], topk: int = 5, *,
                batch_size: int = 32) -> list[Prediction] | list[list[Prediction]]:
        """The top-k classes of each image, most probable first: a list of `Prediction(name,
        prob, index)` for one image (a path, a PIL image, a uint8 (C, H, W) tensor), a list
        of such lists for several (a sequence, a uint8 (B, C, H, W) batch)."""
        tensors, single = as_images(images)
        answers: list[list[Prediction]] = []
        for start in range(0, len(tensors), batch_size):
            probs = self.probabilities(tensors[start:start + batch_size])
            for p in probs:
                values, indices = top_classes(p, topk)  # clipped to the number of classes
                answers.append([Prediction(self.classes[int(c)], float(v), int(c))
                                for v, c in zip(values, indices, strict=True)])
        return answers[0] if single else answers

    def checkpoint(self) -> dict[str, Any]:
        """This model as a checkpoint dict without training state (`alexnet.weights.checkpoint`'s
        layout): what `save_pretrained` writes."""
        return {"model": {"config": dict(self.net.config), "state_dict": self.net.state_dict()},
                "classes": list(self.meta.get("classes") or self.classes),
                "data": {"normalization": {k: v.cpu() for k, v in
                                           self.transforms.normalization.items()},
                         "preprocess": dict(self.transforms.preprocess)},
                "config": {"data": self.meta.get("data"), "model": dict(self.net.config)},
                **{k: self.meta[k] for k in ("metrics", "pretrained") if self.meta.get(k)}}

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write a Hugging Face folder: `config.json` (model, classes, normalisation,
        preprocessing) + `model.safetensors`; `alexnet.load(directory)` gives this model back,
        its outputs bit for bit."""
        return save_pretrained(self.checkpoint(), directory)

    def push_to_hub(self, repo_id: str, *, private: bool | None = None,
                    token: str | None = None, commit_message: str = "Upload AlexNet",
                    revision: str | None = None) -> str:
        """Upload `save_pretrained`'s folder to the Hugging Face Hub repository `repo_id`
        (created when missing); returns the commit's URL. Needs `alexnet[hub]`."""
        hub = _huggingface_hub("push_to_hub")
        api = hub.HfApi(token=token)
        repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            info = api.upload_folder(repo_id=repo_id, folder_path=tmp, repo_type="model",
                                     commit_message=commit_message, revision=revision)
        return str(getattr(info, "commit_url", info))

    @classmethod
    def from_pretrained(cls, repo_or_dir: str | os.PathLike, *, revision: str | None = None,
                        token: str | None = None, cache_dir: str | os.PathLike | None = None,
                        device: str | torch.device | None = "cpu") -> Classifier:
        """A model from a local `save_pretrained` folder, or from a Hugging Face Hub repository
        (downloaded to the Hub's cache; needs `alexnet[hub]`)."""
        if not Path(repo_or_dir).is_dir():
            hub = _huggingface_hub("from_pretrained")
            repo_or_dir = hub.snapshot_download(
                repo_id=str(repo_or_dir), revision=revision, token=token, cache_dir=cache_dir,
                allow_patterns=["config.json", WEIGHTS_NAME])
        return load_classifier(repo_or_dir, device=device)

    def extra_repr(self) -> str:
        return f"classes={len(self.classes)}, source={self.source!r}"


def _drop_net_prefix(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                     local_metadata: Any) -> None:
    """state_dict(): the network's own keys (`features.0.weight`, not `net.features.0.weight`),
    so a Classifier's weights load into `create_model(...)` and back."""
    inner = prefix + "net."
    for key in [k for k in state_dict if k.startswith(prefix)]:
        value = state_dict.pop(key)
        state_dict[prefix + key[len(inner):] if key.startswith(inner) else key] = value


def _add_net_prefix(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                    *args: Any) -> None:
    """load_state_dict(): the network's keys go to `net` (a checkpoint's state_dict loads)."""
    for key in [k for k in state_dict if k.startswith(prefix)
                and not k.startswith(prefix + "net.")]:
        state_dict[prefix + "net." + key[len(prefix):]] = state_dict.pop(key)


def _huggingface_hub(what: str) -> Any:
    try:
        import huggingface_hub
    except ImportError as err:
        raise AlexNetError(f"{what} needs the `huggingface_hub` package: {HUB_EXTRA}") from err
    return huggingface_hub


def classifier_from_checkpoint(opened: Opened, *, views: str = "center",
                               source: str = "") -> Classifier:
    """The `Classifier` of an opened checkpoint (`open_checkpoint`), in eval mode on its
    device."""
    net, state = opened.model, opened.state
    try:
        normalization = state["data"]["normalization"]
        preprocess = state["data"]["preprocess"]
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{source or 'the checkpoint'}: no data.normalization / "
                              "data.preprocess section; it was not written by `alexnet "
                              "train`") from err
    meta = {"classes": list(state.get("classes") or []),
            "data": (state.get("config") or {}).get("data"),
            "metrics": state.get("metrics"), "pretrained": state.get("pretrained")}
    note = UNCROPPED_TEN_VIEWS if views == "ten" and ten_views_unfair(preprocess) else ""
    return Classifier(net, display_names(state, net.num_classes),
                      Transforms(normalization, preprocess, views), meta, source=source,
                      note=note).eval()


def load_classifier(checkpoint: str | os.PathLike, *, views: str = "center",
                    device: str | torch.device | None = "cpu") -> Classifier:
    """`alexnet.load`: the model of a checkpoint file, a run folder (its best.pt, else
    last.pt), a Hugging Face folder (`save_pretrained`), a safetensors export or the word
    `torchvision`, in eval mode on `device`, with its classes and its own preprocessing
    (`views`: "center" or §4.1's "ten")."""
    opened = open_checkpoint(checkpoint, device=device)
    return classifier_from_checkpoint(opened, views=views, source=str(checkpoint)).to(
        opened.device)


def torchvision_classifier(*, device: str | torch.device | None = "cpu",
                           views: str = "center") -> Classifier:
    """`owt` with torchvision's IMAGENET1K_V1 weights (torch hub cache, downloaded when
    missing): `load_classifier("torchvision")`, torchvision's resize 256, centre crop 224 and
    ImageNet mean/std through the loaders' transform (alexnet.weights.torchvision_weights)."""
    return load_classifier(TORCHVISION, views=views, device=device)


def predict_files(model: Classifier, paths: Sequence[str | os.PathLike], *, topk: int = 5,
                  batch_size: int = 32) -> list[dict[str, Any]]:
    """`model.predict` on image files, one result per file, in order: `{"file",
    "predictions": [{"rank", "class", "name", "prob"}]}`, or `{"file", "error"}` for a file
    that cannot be read (the others still run)."""
    results: list[dict[str, Any]] = [{"file": str(p)} for p in paths]
    pending: list[tuple[int, torch.Tensor]] = []

    def flush() -> None:
        if not pending:
            return
        try:
            answers = model.predict([img for _, img in pending], topk)
        except AlexNetError:  # one bad image in the batch: answer them one by one
            for i, img in pending:
                try:
                    results[i]["predictions"] = _ranked(model.predict(img, topk))
                except AlexNetError as err:
                    results[i]["error"] = str(err)
        else:
            for (i, _), preds in zip(pending, answers, strict=True):
                results[i]["predictions"] = _ranked(preds)
        pending.clear()

    for i, path in enumerate(paths):
        try:
            pending.append((i, load_image(str(path))))
        except AlexNetError as err:
            results[i]["error"] = str(err)
        except OSError as err:
            results[i]["error"] = f"cannot read {path}: {err}"
        if len(pending) >= batch_size:
            flush()
    flush()
    return results


def _ranked(predictions: Any) -> list[dict[str, Any]]:
    return [{"rank": r + 1, "class": p.index, "name": p.name, "prob": p.prob}
            for r, p in enumerate(predictions)]


def format_predictions(results: list[dict[str, Any]]) -> str:
    """Human-readable lines for `alexnet predict`."""
    lines = []
    for r in results:
        if "error" in r:
            lines.append(f"{r['file']}: error: {r['error']}")
            continue
        lines.append(f"{r['file']}:")
        lines += [f"  {p['rank']}. {p['prob']:7.2%}  {p['name']}" for p in r["predictions"]]
    return "\n".join(lines)
