"""Fig. 3 as a number: the chroma of conv1's kernels, per tower (evaluation/kernel_colour.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from alexnet.cli import main
from alexnet.errors import AlexNetError
from alexnet.evaluation.kernel_colour import kernel_chroma, tower_chroma
from conftest import write_checkpoint


def test_grey_kernels_have_no_chroma():
    pattern = torch.randn(5, 1, 11, 11)
    assert torch.allclose(kernel_chroma(pattern.repeat(1, 3, 1, 1)), torch.zeros(5), atol=1e-6)
    assert kernel_chroma(torch.zeros(1, 3, 11, 11)).item() == 0.0  # no weights: no colour


def test_pure_colour_and_opponent_kernels_have_known_chroma():
    p = torch.randn(11, 11)
    zero = torch.zeros(11, 11)
    red = torch.stack([p, zero, zero])[None]  # one channel: |(2p, -p, -p)/3| / |p| = sqrt(2/3)
    green = torch.stack([zero, 3 * p, zero])[None]  # scale does not matter
    opponent = torch.stack([p, -p, zero])[None]  # channels sum to 0 at every pixel
    c = kernel_chroma(torch.cat([red, green, opponent]))
    assert c.tolist() == pytest.approx([math.sqrt(2 / 3), math.sqrt(2 / 3), 1.0], rel=1e-5)
    # (2p, 0, p): grey part (p, p, p), colour part (p, -p, 0): |(p, -p, 0)| / |(2p, 0, p)|
    mixed = torch.stack([2 * p, zero, p])[None]
    assert kernel_chroma(mixed).item() == pytest.approx(math.sqrt(2 / 5), rel=1e-5)


def test_towers_split_the_kernels_in_halves():
    p = torch.randn(48, 1, 11, 11)
    grey = p.repeat(1, 3, 1, 1)
    colour = torch.cat([p, torch.zeros_like(p), torch.zeros_like(p)], dim=1)
    towers = tower_chroma(torch.cat([grey, colour]), towers=2)
    assert [t["kernels"] for t in towers] == [[0, 48], [48, 96]]
    assert towers[0]["mean"] == pytest.approx(0.0, abs=1e-6) and towers[0]["std"] < 1e-6
    assert towers[1]["mean"] == pytest.approx(math.sqrt(2 / 3), rel=1e-5)
    one = tower_chroma(torch.cat([grey, colour]), towers=1)
    assert len(one) == 1 and one[0]["kernels"] == [0, 96]
    assert one[0]["mean"] == pytest.approx(math.sqrt(2 / 3) / 2, rel=1e-5)
    assert one[0]["std"] == pytest.approx(math.sqrt(2 / 3) / 2, rel=1e-5)  # half 0, half c


def test_grey_models_are_refused():
    with pytest.raises(AlexNetError, match="RGB kernels"):
        kernel_chroma(torch.randn(96, 1, 11, 11))


def test_the_kernels_command(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "m.pt")
    assert main(["kernels", str(ckpt), "--json", "--out", str(tmp_path / "k.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kernels"] == 96 and len(out["chroma"]) == 96 and len(out["towers"]) == 2
    assert (tmp_path / "k.png").stat().st_size > 1000
    assert main(["kernels", str(ckpt)]) == 0
    text = capsys.readouterr().out
    assert "tower 1 (kernels 0-47)" in text and "tower 2 (kernels 48-95)" in text
