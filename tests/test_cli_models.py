"""`alexnet models` and `alexnet summary` print what the models are."""

from __future__ import annotations

import json

import pytest

from alexnet.cli import main
from alexnet.models import create_model, list_models


def run_json(capsys: pytest.CaptureFixture, *argv: str):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_models_json_agrees_with_models(capsys: pytest.CaptureFixture) -> None:
    rows = run_json(capsys, "models", "--json")
    assert [r["name"] for r in rows] == list_models()
    for r in rows:
        model = create_model(r["name"])
        assert r["params"] == sum(p.numel() for p in model.parameters())
        assert r["gflops"] > 0 and r["source"]
    owt = next(r for r in rows if r["name"] == "owt")
    assert owt["gflops"] == pytest.approx(2 * 0.714, abs=0.01)  # torchvision: 0.714 G mult-adds


def test_summary_json_agrees_with_model(capsys: pytest.CaptureFixture) -> None:
    out = run_json(capsys, "summary", "paper", "--json")
    model = create_model("paper")
    assert out["params"] == 60_965_224
    assert sum(layer["params"] for layer in out["layers"]) == out["params"]
    shapes = {layer["name"]: layer["output_shape"] for layer in out["layers"]}
    assert shapes["features.conv1"] == [96, 55, 55]
    assert shapes["classifier.fc8"] == [1000]
    assert out["model"] == model.config


def test_summary_options(capsys: pytest.CaptureFixture) -> None:
    out = run_json(capsys, "summary", "paper", "model.lrn=false", "image_size=112",
                   "--num-classes", "10", "--json")
    assert not any("LocalResponseNorm" in layer["kind"] for layer in out["layers"])
    assert out["layers"][-1]["output_shape"] == [10]


def test_summary_table_and_bad_name(capsys: pytest.CaptureFixture) -> None:
    assert main(["summary", "half"]) == 0
    assert "conv5" in capsys.readouterr().out
    assert main(["summary", "alexnet-xl"]) == 2
    err = capsys.readouterr().err
    assert "unknown model" in err and "owt" in err and "Traceback" not in err
