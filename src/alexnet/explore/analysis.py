"""What the explorer shows, as pure functions of a model and images: the layers' activation
maps, occlusion sensitivity, Grad-CAM, conv1's kernels, receptive fields, and one pass over a
dataset that keeps each unit's strongest images and the fc7 vectors of §6.1's neighbours.

Nothing here serves a page or writes a file (`server.py` and `index.py` do); every function
takes tensors and returns tensors or plain numbers, so the tests and the benchmark call them
directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from alexnet.data import display_image, preprocess_images
from alexnet.errors import AlexNetError, CheckpointError
from alexnet.evaluation.checkpoints import display_names, ten_views_unfair
from alexnet.evaluation.metrics import average_views, top_classes
from alexnet.weights.checkpoint import Opened, open_checkpoint

_ACTIVATIONS = (nn.ReLU, nn.Tanh)
TOP_UNITS = 9  # dataset examples per unit (Zeiler & Fergus; OpenAI Microscope: the top 9)
CENTRE = 4  # the centre crop's place among §4.1's ten views (torchvision's TenCrop order)


@dataclass(frozen=True)
class Tap:
    """A layer whose output the explorer shows: `name` (conv1..conv5, pool1.., fc6..fc8), the
    module whose forward output is it, and whether the net's activation is still to be applied
    (`original`'s conv1 goes through LRN and pooling before its ReLU)."""

    name: str
    module: nn.Module
    kind: str  # conv | pool | fc
    rectify: bool = False


def _is_conv(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) or any(isinstance(c, nn.Conv2d) for c in m.modules())


def layer_taps(model: nn.Module) -> list[Tap]:
    """The conv layers (after their activation), the max-pools of `features` and the fc layers
    of `classifier` (after their activation; fc8: the logits), in the paper's names: the
    modules' own names for the paper family, by position otherwise (torchvision's owt)."""
    children = list(model.features.named_children())
    taps: list[Tap] = []
    k = 0
    for i, (name, m) in enumerate(children):
        after = children[i + 1][1] if i + 1 < len(children) else None
        follows = isinstance(after, _ACTIVATIONS)
        if _is_conv(m):
            k += 1
            label = name if re.fullmatch(r"conv\d", name) else f"conv{k}"
            taps.append(Tap(label, after if follows else m, "conv", rectify=not follows))
        elif isinstance(m, nn.MaxPool2d):
            label = name if re.fullmatch(r"pool\d", name) else f"pool{k}"
            taps.append(Tap(label, after if follows else m, "pool"))
    mods = list(model.classifier)
    linear = [i for i, m in enumerate(mods) if isinstance(m, nn.Linear)]
    for j, i in enumerate(linear):
        follows = i + 1 < len(mods) and isinstance(mods[i + 1], _ACTIVATIONS)
        taps.append(Tap(f"fc{6 + j}", mods[i + 1] if follows else mods[i], "fc"))
    return taps


def activation_fn(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The net's hidden activation (ReLU, or tanh for §3.1's comparison)."""
    tanh = any(isinstance(m, nn.Tanh) for m in model.features.modules())
    return torch.tanh if tanh else torch.relu


@contextmanager
def recording(model: nn.Module, taps: list[Tap]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks that put each tap's output (B, C, h, w) or (B, D) in the yielded dict,
    still in the autograd graph (Grad-CAM differentiates through it)."""
    out: dict[str, torch.Tensor] = {}
    act = activation_fn(model)

    def hook(tap: Tap) -> Callable[..., None]:
        def store(_m: nn.Module, _inp: Any, output: torch.Tensor) -> None:
            out[tap.name] = act(output) if tap.rectify else output
        return store

    handles = [t.module.register_forward_hook(hook(t)) for t in taps]
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


def receptive_field(model: nn.Module, tap: str) -> tuple[int, int, int]:
    """(size, stride, offset) in input pixels of one position of a conv/pool tap's map: the
    position (i, j) sees the square of side `size` centred at offset + stride·(i, j) (the
    input's zero padding included, so boxes near the border reach outside the image)."""
    size, jump, start = 1, 1, 0.0
    taps = {t.name: t for t in layer_taps(model)}
    if tap not in taps or taps[tap].kind == "fc":
        raise AlexNetError(f"{tap} has no receptive field in the image; choose a conv or pool "
                           "layer")
    leaves = [m for m in model.features.modules() if not list(m.children())]
    mine = {id(m) for m in taps[tap].module.modules()}  # a container tap: its last leaf
    last = max(i for i, m in enumerate(leaves) if id(m) in mine)
    for m in leaves[:last + 1]:
        if isinstance(m, nn.ZeroPad2d):
            start -= m.padding[0] * jump
        elif isinstance(m, nn.Conv2d | nn.MaxPool2d):
            k, s, p = (_first(getattr(m, a)) for a in ("kernel_size", "stride", "padding"))
            start += ((k - 1) / 2 - p) * jump
            size += (k - 1) * jump
            jump *= s
    return size, jump, int(round(start))


def _first(v: int | tuple[int, ...]) -> int:
    return int(v[0] if isinstance(v, tuple) else v)


@dataclass
class Explorer:
    """One checkpoint ready to look into: its model (eval mode, ReLUs not in place so that
    hooks and gradients see every layer's output), class names, input transform and taps."""

    model: nn.Module
    classes: list[str]
    normalization: dict[str, torch.Tensor]
    preprocess: dict[str, Any]
    source: str
    taps: list[Tap] = field(default_factory=list)
    note: str = ""

    def __post_init__(self) -> None:
        for m in self.model.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
        self.model.eval()
        self.taps = layer_taps(self.model)

    @property
    def towers(self) -> int:
        return int(getattr(self.model, "towers", 1))

    @property
    def size(self) -> int:
        return int(self.preprocess.get("size") or self.preprocess.get("crop")
                   or self.preprocess["resize"])

    def tap(self, name: str) -> Tap:
        for t in self.taps:
            if t.name == name:
                return t
        raise AlexNetError(f"unknown layer {name!r}; this model has "
                           f"{', '.join(t.name for t in self.taps)}")

    def views(self, images: list[torch.Tensor]) -> torch.Tensor:
        """uint8 (C, H, W) images -> §4.1's ten views (B, 10, C, s, s), normalised."""
        return preprocess_images(images, self.normalization, self.preprocess, "ten")

    def picture(self, view: torch.Tensor) -> torch.Tensor:
        """A normalised (C, s, s) view as uint8 (3, s, s), for the page."""
        x = (display_image(view, self.normalization) * 255).round().to(torch.uint8)
        return x.expand(3, -1, -1).contiguous() if x.shape[0] == 1 else x


def load_explorer(checkpoint: str, opened: Opened | None = None) -> Explorer:
    """An `Explorer` of a checkpoint (file, run folder, `torchvision`: `open_checkpoint`), or
    of its `opened` checkpoint when already open."""
    opened = opened if opened is not None else open_checkpoint(checkpoint, device="cpu")
    model, state = opened.model, opened.state
    data = state.get("data") or {}
    if not data.get("normalization") or not data.get("preprocess"):
        raise CheckpointError(f"{checkpoint}: no data.normalization / data.preprocess section; "
                              "it was not written by `alexnet train`")
    note = "this model trained on whole images: its ten views include mirror images it never " \
        "saw" if ten_views_unfair(data["preprocess"]) else ""
    return Explorer(model, display_names(state, model.num_classes), dict(data["normalization"]),
                    dict(data["preprocess"]), str(checkpoint), note=note)


@dataclass
class Analysis:
    """One image through one model: its centre view (normalised and as a picture), class
    probabilities from the centre view and from §4.1's ten views, and every tap's output on
    the centre view (maps (C, h, w), fc vectors (D,))."""

    view: torch.Tensor
    picture: torch.Tensor
    probs_centre: torch.Tensor
    probs_ten: torch.Tensor
    maps: dict[str, torch.Tensor]
    occlusion: dict[str, Any] | None = None


@torch.no_grad()
def analyse(ex: Explorer, image: torch.Tensor) -> Analysis:
    """Top classes and activations of a uint8 (C, H, W) image: one batch of its ten views gives
    the ten-view average and (its fifth view is the centre crop) the centre prediction and
    maps."""
    x = ex.views([image])[0]  # (10, C, s, s)
    with recording(ex.model, ex.taps) as out:
        logits = ex.model(x)  # (10, classes)
    probs = average_views(logits)  # (10, classes): softmax per view
    return Analysis(view=x[CENTRE], picture=ex.picture(x[CENTRE]),
                    probs_centre=probs[CENTRE].float(), probs_ten=probs.mean(0).float(),
                    maps={k: v[CENTRE].float() for k, v in out.items()})


def top5(probs: torch.Tensor, classes: list[str], k: int = 5) -> list[dict[str, Any]]:
    """[{"class", "name", "prob"}] of the k most probable classes."""
    p, idx = top_classes(probs, k)
    return [{"class": int(c), "name": classes[int(c)], "prob": float(v)}
            for v, c in zip(p, idx, strict=True)]


def check_class(ex: Explorer, value: object) -> int:
    """A class index given as text or a number, checked against the model's classes."""
    try:
        c = int(str(value))
    except ValueError:
        names = {n: i for i, n in enumerate(ex.classes)}
        if str(value) in names:
            return names[str(value)]
        raise AlexNetError(f"unknown class {value!r}: give a class index from 0 to "
                           f"{len(ex.classes) - 1} or a class name") from None
    if not 0 <= c < len(ex.classes):
        raise AlexNetError(f"unknown class {c}: this model has classes 0 to "
                           f"{len(ex.classes) - 1}")
    return c


# ---------------------------------------------------------------- where it looks


def occlusion_grid(size: int, grid: int = 10) -> tuple[int, int]:
    """(patch side, stride) of a grid×grid sweep of grey squares over a size² view: squares
    of about a fifth of the view, each overlapping its neighbour by half."""
    patch = max(1, round(2 * size / (grid + 1)))
    stride = max(1, (size - patch) // max(grid - 1, 1))
    return patch, stride


@torch.no_grad()
def occlusion(ex: Explorer, view: torch.Tensor, *, grid: int = 10, batch_size: int = 25
              ) -> dict[str, Any]:
    """Zeiler & Fergus's occlusion sensitivity: the class probabilities with a square of the
    mean colour (0 after normalisation) over each place of a grid×grid sweep of the centre view
    (C, s, s). Returns {"probs" (grid, grid, classes), "base" (classes,), "patch", "stride"};
    `occlusion_map` turns one class's column into a picture."""
    c, s, _ = view.shape
    patch, stride = occlusion_grid(s, grid)
    places = [(i * stride, j * stride) for i in range(grid) for j in range(grid)]
    out = []
    for lo in range(0, len(places), batch_size):
        chunk = places[lo:lo + batch_size]
        x = view.expand(len(chunk), c, s, s).clone()  # (b, C, s, s)
        for n, (top, left) in enumerate(chunk):
            x[n, :, top:top + patch, left:left + patch] = 0.0
        out.append(torch.softmax(ex.model(x).float(), dim=1))
    base = torch.softmax(ex.model(view[None]).float(), dim=1)[0]
    return {"probs": torch.cat(out).view(grid, grid, -1), "base": base, "patch": patch,
            "stride": stride}


def occlusion_map(result: dict[str, Any], cls: int, size: int) -> torch.Tensor:
    """(size, size) map of how much covering each pixel lowers class `cls`'s probability:
    the drop of every square covering it, averaged; positive where the class's evidence is."""
    drop = result["base"][cls] - result["probs"][..., cls]  # (grid, grid)
    total = torch.zeros(size, size)
    count = torch.zeros(size, size)
    p, s = result["patch"], result["stride"]
    for i in range(drop.shape[0]):
        for j in range(drop.shape[1]):
            total[i * s:i * s + p, j * s:j * s + p] += drop[i, j]
            count[i * s:i * s + p, j * s:j * s + p] += 1
    return total / count.clamp_min(1)


def grad_cam(ex: Explorer, view: torch.Tensor, cls: int, layer: str | None = None
             ) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) of class `cls` at the last conv layer (or `layer`):
    ReLU(Σ_k α_k A_k) with α_k the spatial mean of d logit / d A_k; (h, w), not normalised."""
    name = layer or [t for t in ex.taps if t.kind == "conv"][-1].name
    tap = ex.tap(name)
    with torch.enable_grad(), recording(ex.model, [tap]) as out:
        logit = ex.model(view[None])[0, cls]
        maps = out[name]  # (1, C, h, w)
        (grad,) = torch.autograd.grad(logit, maps)
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1)
    return torch.relu((weights * maps.detach()).sum(1))[0]  # (h, w)


# ---------------------------------------------------------------- conv1's kernels


def kernel_tiles(weight: torch.Tensor) -> torch.Tensor:
    """conv1's weight (K, C, kh, kw) as pictures (K, 3, kh, kw) in [0, 1], each kernel
    min-max scaled on its own (as Fig. 3 and `figures.conv1_kernels`)."""
    w = weight.detach().float().cpu()
    if w.shape[1] != 3:
        w = w.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    return (w - lo) / (hi - lo).clamp_min(1e-12)


# ---------------------------------------------------------------- one pass over a dataset


@dataclass
class UnitIndex:
    """What one pass over a dataset keeps: per conv/pool tap and channel the TOP_UNITS images
    with the strongest response anywhere in the map, and where; per fc tap and unit the
    TOP_UNITS strongest images; and every image's fc7 vector (§6.1's neighbours)."""

    values: dict[str, torch.Tensor] = field(default_factory=dict)  # (C, 9) float
    images: dict[str, torch.Tensor] = field(default_factory=dict)  # (C, 9) int64
    places: dict[str, torch.Tensor] = field(default_factory=dict)  # (C, 9, 2) int64: (i, j)
    features: list[torch.Tensor] = field(default_factory=list)  # [(b, 4096) float16]
    seen: int = 0

    def add(self, maps: dict[str, torch.Tensor], taps: list[Tap], feature_layer: str) -> None:
        """Merge one batch of tap outputs ((B, C, h, w) or (B, D)) into the running top 9."""
        b = next(iter(maps.values())).shape[0]
        ids = torch.arange(self.seen, self.seen + b)
        for t in taps:
            m = maps[t.name].detach().float()
            if m.dim() == 4:
                flat = m.flatten(2)  # (B, C, h·w)
                v, at = flat.max(dim=2)  # (B, C)
                place = torch.stack([at // m.shape[3], at % m.shape[3]], dim=-1)  # (B, C, 2)
            else:
                v, place = m, torch.zeros(*m.shape, 2, dtype=torch.int64)
            v, img, place = v.T, ids.expand(v.shape[1], b), place.transpose(0, 1)  # (C, B ...)
            if t.name in self.values:
                v = torch.cat([self.values[t.name], v], dim=1)
                img = torch.cat([self.images[t.name], img], dim=1)
                place = torch.cat([self.places[t.name], place], dim=1)
            top = v.topk(min(TOP_UNITS, v.shape[1]), dim=1).indices  # (C, ≤9)
            self.values[t.name] = v.gather(1, top)
            self.images[t.name] = img.gather(1, top)
            self.places[t.name] = place.gather(1, top[..., None].expand(-1, -1, 2))
        self.features.append(maps[feature_layer].detach().float().to(torch.float16))
        self.seen += b

    def state(self) -> dict[str, Any]:
        """Plain tensors for `torch.save` (loads with weights_only)."""
        return {"values": self.values, "images": self.images, "places": self.places,
                "features": torch.cat(self.features) if self.features else torch.zeros(0),
                "seen": self.seen}


@torch.no_grad()
def index_batch(ex: Explorer, images: list[torch.Tensor], index: UnitIndex) -> None:
    """Run the centre views of uint8 (C, H, W) images through the model and merge their tap
    outputs into `index` (the strongest images per unit, and their fc7 vectors)."""
    layer = "fc7" if any(t.name == "fc7" for t in ex.taps) else ex.taps[-1].name
    x = preprocess_images(images, ex.normalization, ex.preprocess, "center")
    with recording(ex.model, ex.taps) as out:
        ex.model(x)
    index.add(out, ex.taps, layer)
