"""The `paper` recipe must learn on real photographs: QUICK mode on tiny-imagenet-10 (10 ILSVRC
classes, 500 training JPEGs each, from $ALEXNET_TEST_DATA), through the CLI as
a user runs it. Before §4.2's dropout and Caffe's biases of 0.1 (docs/paper-facts.md) this run
ended at chance, 90% validation error; synthetic data and Fashion-MNIST never showed it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alexnet.cli import main
from conftest import photo_set


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    photos = photo_set("tiny-imagenet-10")
    dest = tmp_path_factory.mktemp("ti10") / "prepared"
    assert main(["prepare", str(photos), str(dest)]) in (0, None)
    return dest


def _val_errors(run: Path) -> list[float]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["top1_err"] for r in records if r["split"] == "val"]


def test_quick_paper_recipe_learns_on_tiny_imagenet(prepared: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "paper"
    assert main(["train", "--recipe", "paper", "--data", str(prepared), "--out", str(run),
                 "quick=true", "device=cpu"]) in (0, None)
    errors = _val_errors(run)
    assert errors and errors[-1] < 0.80, f"validation error per epoch: {errors} (chance: 0.90)"
    assert "stuck at chance" not in capsys.readouterr().out
