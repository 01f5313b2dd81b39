"""§4.2's dropout (kept units unscaled in training, ×0.5 at test) vs PyTorch's inverted one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from alexnet.errors import ConfigError
from alexnet.models import create_model
from alexnet.models.dropout_scaling import PaperDropout, make_dropout


def test_training_keeps_units_unscaled_and_test_halves_them() -> None:
    drop = PaperDropout(0.5)
    x = torch.rand(64, 4096) + 1.0  # all positive: a kept unit is recognisable
    torch.manual_seed(0)
    y = drop.train()(x)
    kept = y != 0
    assert torch.equal(y[kept], x[kept])  # layer.cu: a 0/1 mask, no 1/(1-p) factor
    assert 0.45 < kept.float().mean() < 0.55
    assert torch.equal(drop.eval()(x), x * 0.5)  # §4.2: "multiply their outputs by 0.5"


def test_expected_training_output_equals_test_output() -> None:
    drop = PaperDropout(0.5)
    x = torch.full((20000, 8), 3.0)
    torch.manual_seed(1)
    mean_train = drop.train()(x).mean(0)
    assert torch.allclose(mean_train, drop.eval()(x)[0], atol=0.05)


def test_paper_models_use_the_papers_dropout_by_default() -> None:
    for name in ("paper", "original", "one-tower", "half"):
        model = create_model(name, num_classes=10, image_size=64)
        drops = [m for m in model.modules() if isinstance(m, PaperDropout | nn.Dropout)]
        assert len(drops) == 2 and all(isinstance(d, PaperDropout) for d in drops), name
    inverted = create_model("paper", num_classes=10, image_size=64, dropout_scaling="train")
    assert isinstance(inverted.classifier.drop6, nn.Dropout)
    assert inverted.config["dropout_scaling"] == "train"


def test_bad_dropout_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="dropout_scaling"):
        make_dropout(0.5, "sometimes")
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        create_model("paper", dropout=1.5)
