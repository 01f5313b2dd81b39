"""Fig. 3 as a number: how colour-specific each conv1 kernel is, tower by tower.

§6.1: "the kernels on GPU 1 are largely color-agnostic, while the kernels on GPU 2 are largely
color-specific. This kind of specialization occurs during every run and is independent of any
particular random weight initialization". The chroma of a kernel measures it: the part of its
RGB weights that is not the same on all three channels, relative to the whole kernel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from alexnet.errors import AlexNetError
from alexnet.figures.conv1_kernels import conv1_kernels_figure
from alexnet.weights.checkpoint import open_checkpoint


def kernel_chroma(weight: torch.Tensor) -> torch.Tensor:
    """Per kernel of conv1's weight (K, 3, kh, kw): |w − grey(w)| / |w|, in [0, 1].

    grey(w) repeats the per-pixel mean over R, G, B on each channel, so a grey kernel (the same
    weights on every channel) gives 0, a kernel on one channel only gives sqrt(2/3) ≈ 0.816,
    and one whose channels sum to zero at every pixel (opponent colours) gives 1. An all-zero
    kernel gives 0. I.i.d. random weights (§5's init, an untrained net) give about sqrt(2/3)
    too: two of the three colour directions are chroma. Learning moves a kernel away from it,
    towards 0 (grey: tower 1 in Fig. 3) or towards 1.
    """
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise AlexNetError(f"kernel colour needs RGB kernels (K, 3, kh, kw), got "
                           f"{tuple(weight.shape)}: a grey-image model has no colour to measure")
    w = weight.detach().double().flatten(2)  # (K, 3, kh·kw)
    chroma = w - w.mean(1, keepdim=True)  # (K, 3, kh·kw): each pixel's colour, grey removed
    norm = w.flatten(1).norm(dim=1)  # (K,)
    return (chroma.flatten(1).norm(dim=1) / norm.clamp_min(1e-30)).float()


def tower_chroma(weight: torch.Tensor, towers: int = 1) -> list[dict[str, Any]]:
    """`kernel_chroma` summarised per tower: kernels [0:K/2] are tower 1 (GPU 1), [K/2:K]
    tower 2 for two-tower models (§3.2); one tower otherwise. Each entry: {"tower", "kernels":
    [first, last + 1], "mean", "std" (population), "median", "min", "max"}."""
    chroma = kernel_chroma(weight)  # (K,)
    out, start = [], 0
    for i, part in enumerate(torch.chunk(chroma, max(1, towers))):
        out.append({"tower": i + 1, "kernels": [start, start + len(part)],
                    "mean": float(part.mean()), "std": float(part.std(correction=0)),
                    "median": float(part.median()), "min": float(part.min()),
                    "max": float(part.max())})
        start += len(part)
    return out


def checkpoint_kernel_colour(checkpoint: str, figure: str | Path | None = None
                             ) -> dict[str, Any]:
    """Per-tower chroma of a checkpoint's conv1 kernels, and each kernel's, as plain numbers;
    with `figure`, the kernels drawn as Fig. 3 too."""
    model = open_checkpoint(checkpoint, device="cpu").model
    weight = model.conv1.weight.detach()  # (96, 3, 11, 11) for the paper
    towers = int(getattr(model, "towers", 1))
    result = {"checkpoint": str(checkpoint), "model": model.config.get("name"),
              "kernels": int(weight.shape[0]), "towers": tower_chroma(weight, towers),
              "chroma": [round(float(c), 6) for c in kernel_chroma(weight)]}
    if figure is not None:
        result["figure"] = str(conv1_kernels_figure(weight, figure, towers=towers))
    return result


def format_kernel_colour(result: dict[str, Any]) -> str:
    """The per-tower table `alexnet kernels` prints."""
    lines = [f"{result['checkpoint']} ({result['model']}): conv1 chroma, 0 = grey, "
             "0.816 = one channel or random weights, 1 = opponent colours"]
    for t in result["towers"]:
        first, end = t["kernels"]
        lines.append(f"  tower {t['tower']} (kernels {first}-{end - 1}): mean {t['mean']:.3f} "
                     f"± {t['std']:.3f}, median {t['median']:.3f}, range "
                     f"{t['min']:.3f}-{t['max']:.3f}")
    return "\n".join(lines)
