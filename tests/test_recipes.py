"""Recipes (YAML presets) and the resolved config: overrides, quick mode, unknown keys."""

import pytest
import yaml

from alexnet.errors import ConfigError
from alexnet.recipes import list_recipes, load_recipe
from alexnet.train.run_config import (
    OptimConfig,
    RunConfig,
    dump_config,
    parse_overrides,
    resolve_config,
)


def test_shipped_recipes_resolve():
    assert list_recipes()[0] == "fashion-mnist"
    assert {"paper", "original", "torchvision", "fashion-mnist"} <= set(list_recipes())
    for name in list_recipes():
        cfg = resolve_config(load_recipe(name), cuda=True)
        assert cfg.recipe == name and cfg.quick is False
        assert yaml.safe_load(dump_config(cfg)) == cfg.to_dict()
        assert RunConfig.from_dict(yaml.safe_load(dump_config(cfg))) == cfg


def test_paper_recipe_is_section_5():
    cfg = resolve_config(load_recipe("paper"), cuda=True)
    assert cfg.batch_size == 128 and cfg.epochs == 90
    assert cfg.optim == OptimConfig(**{"name": "paper", "lr": 0.01, "momentum": 0.9,
                                       "weight_decay": 0.0005})
    assert cfg.schedule.name == "plateau" and cfg.schedule.max_reductions == 3
    assert cfg.model.name == "paper" and cfg.model.options["init"] == "paper"
    tv = resolve_config(load_recipe("torchvision"), cuda=True)
    assert tv.model.name == "owt" and tv.optim.name == "sgd"


def test_quick_mode_is_auto_without_cuda_and_overrides_win():
    recipe = load_recipe("fashion-mnist")
    quick = resolve_config(recipe, cuda=False)
    assert quick.quick is True and quick.epochs < 10
    assert quick.model.image_size == quick.quick_overrides["model.image_size"]
    full = resolve_config(recipe, {"quick": False}, cuda=False)
    assert full.quick is False and full.epochs == 10 and full.model.image_size == 224
    mine = resolve_config(recipe, parse_overrides(["epochs=1", "optim.lr=2e-3",
                                                   "model.lrn=false"]), cuda=False)
    assert (mine.epochs, mine.optim.lr, mine.model.options["lrn"]) == (1, 0.002, False)


def test_unknown_keys_and_bad_overrides_are_config_errors():
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.lrr'.*optim\.lr"):
        resolve_config(load_recipe("paper"), {"optim.lrr": 1})
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["epochs"])
    with pytest.raises(ConfigError, match="valid recipes: fashion-mnist"):
        load_recipe("papper")
    with pytest.raises(ConfigError, match="quick"):
        resolve_config(load_recipe("paper"), {"quick": "maybe"})


def test_recipe_from_a_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model: {name: half}\nepochs: 3\n")
    cfg = resolve_config(load_recipe(str(path)), cuda=True)
    assert (cfg.recipe, cfg.model.name, cfg.epochs) == ("mine", "half", 3)
    path.write_text("epochz: 3\n")
    with pytest.raises(ConfigError, match="epochz"):
        resolve_config(load_recipe(str(path)), cuda=True)


@pytest.mark.parametrize("name", ["paper", "paper-exact", "original", "original-exact",
                                  "torchvision"])
def test_quick_crops_cover_the_image_as_the_full_recipe_does(name):
    """QUICK's 64-px crops come from 73-px images, as the full run's 224 from 256 (§2, §4.1)."""

    quick = resolve_config(load_recipe(name), {"data.source": "/data"}, cuda=False)
    full = resolve_config(load_recipe(name), {"data.source": "/data"}, cuda=True)
    q, f = (c.data.resolved() for c in (quick, full))
    assert (q.crop, q.resize) == (64, 73) and (f.crop, f.resize) == (224, 256)
    assert quick.model.image_size == q.crop


def test_exact_recipes_are_the_shipped_ones_with_section_5_init():
    for name in ("paper", "original"):
        shipped = resolve_config(load_recipe(name), cuda=True)
        exact = resolve_config(load_recipe(f"{name}-exact"), cuda=True)
        assert shipped.model.options["init_bias"] == 0.1
        options = exact.model.options
        assert (options["init_bias"], options["dropout_scaling"]) == (1.0, "test")
        for key in ("data", "optim", "schedule", "epochs", "batch_size", "quick_overrides"):
            assert getattr(shipped, key) == getattr(exact, key), key
        assert exact.recipe == f"{name}-exact"
