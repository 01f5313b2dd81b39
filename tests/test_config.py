"""The run config's schema: one declaration per key (`KEYS`), unknown keys, types and ranges
refused before anything is built, model options checked against the chosen model, and the
image size stated once (`model.image_size`) with `data.crop`/`data.resize` derived from it."""

from pathlib import Path

import pytest

import alexnet.train.setup
from alexnet.cli import main
from alexnet.data import DataConfig
from alexnet.errors import ConfigError
from alexnet.recipes import list_recipes, load_recipe
from alexnet.schema import parse_overrides
from alexnet.train.run_config import (
    KEYS,
    RunConfig,
    defaults,
    key_table,
    resolve_config,
    validate_config,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "alexnet"


def _errors(recipe: str = "paper", cuda: bool = True, **overrides) -> str:
    cfg = resolve_config(load_recipe(recipe), {"data.source": "/nowhere", "device": "cpu",
                                               **overrides}, cuda=cuda)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    return str(err.value)


# ---------------------------------------------------------------- one declaration per key

def test_defaults_and_listing_come_from_the_keys():
    cfg = defaults()
    assert cfg["epochs"] == KEYS["epochs"].default == 90 == RunConfig().epochs
    assert cfg["optim"]["lr"] == 0.01 and cfg["model"] == {"name": "paper", "image_size": 224}
    assert cfg["data"] == {"source": "fashion-mnist"}  # the rest: DataConfig per source
    assert RunConfig.from_dict(cfg) == RunConfig()  # the typed defaults are the same
    assert all(KEYS[k].why for k in KEYS)
    table = key_table()
    assert all(k in table for k in KEYS) and "model.lrn" in table
    assert {f"data.{k}" for k in DataConfig.__dataclass_fields__} <= set(KEYS)


# ---------------------------------------------------------------- unknown keys

def test_unknown_keys_at_top_level_in_sections_in_data_and_in_model():
    with pytest.raises(ConfigError, match=r"unknown config key 'epochz' \(did you mean epochs"):
        resolve_config(load_recipe("paper"), {"epochz": 3}, cuda=True)
    with pytest.raises(ConfigError, match=r"'optim.lrr' \(did you mean optim.lr\?\); valid "
                                          r"optim keys: optim.name, optim.lr"):
        resolve_config(load_recipe("paper"), {"optim.lrr": 1}, cuda=True)
    with pytest.raises(ConfigError, match=r"'data.colour'.*valid data keys: data.source"):
        resolve_config(load_recipe("paper"), {"data.colour": 1}, cuda=True)
    with pytest.raises(ConfigError, match=r"model.lrm=False: model 'paper' has no option 'lrm' "
                                          r"\(did you mean lrn\?\); its options: lrn, pool"):
        resolve_config(load_recipe("paper"), {"model.lrm": False}, cuda=True)
    with pytest.raises(ConfigError, match="quick_overrides: unknown config key 'epochz'"):
        resolve_config({"quick_overrides": {"epochz": 1}}, cuda=True)


def test_a_model_option_of_another_model_names_the_chosen_models_options():
    with pytest.raises(ConfigError, match=r"model 'owt' has no option 'lrn'; its options: "
                                          r"dropout, image_size"):
        resolve_config(load_recipe("torchvision"), parse_overrides(["model.lrn=false"]),
                       cuda=True)
    with pytest.raises(ConfigError, match="model 'owt' has no option 'lrn'"):
        resolve_config(load_recipe("paper"), {"model.name": "owt", "model.lrn": False},
                       cuda=True)


def test_a_hand_made_config_with_an_unknown_key_is_refused():
    cfg = resolve_config(load_recipe("paper"), {"data.source": "/d", "device": "cpu"},
                         cuda=True)
    validate_config(cfg)
    with pytest.raises(ConfigError, match="unknown config key 'bogus'"):
        validate_config(cfg.with_values({"bogus": 1}))
    with pytest.raises(ConfigError, match="optim=5: expected a mapping"):
        validate_config(cfg.with_values({"optim": 5}))


# ---------------------------------------------------------------- types and ranges

@pytest.mark.parametrize("override, named", [
    ({"epochs": "x"}, "epochs='x': expected a whole number"),
    ({"optim.momentum": 1.5}, "optim.momentum=1.5: expected a number in [0, 1)"),
    ({"batch_size": 0}, "batch_size=0: expected a whole number >= 1"),
    ({"model.pool": "max"}, "model.pool='max': expected one of overlap, non-overlap"),
    ({"model.init": "he"}, "model.init='he': expected null or one of paper, original, xavier"),
    ({"data.lighting": -1}, "data.lighting=-1: expected a number >= 0"),
    ({"data.crop": "big"}, "data.crop='big': expected null or a whole number >= 1"),
])
def test_wrong_types_and_out_of_range_values_are_one_line_each(override, named):
    assert _errors(**override) == named or _errors(**override).startswith(named)


# ---------------------------------------------------------------- the image size, once

def test_sizes_follow_model_image_size():
    def sizes(recipe="paper", **overrides):
        cfg = resolve_config(load_recipe(recipe), {"data.source": "/d", **overrides},
                             cuda=True)
        validate_config(cfg.with_values({"device": "cpu"}))
        r = cfg.data.resolved()
        return cfg.model.image_size, r.crop, r.resize

    assert sizes() == (224, 224, 256)  # §2, §4.1: 224 patches of 256 images
    assert sizes(**{"model.image_size": 112}) == (112, 112, 128)
    assert sizes(**{"model.image_size": 64, "data.resize": 72}) == (64, 64, 72)
    assert sizes("fashion-mnist", **{"model.image_size": 96}) == (96, None, 96)
    assert sizes("fashion-mnist", **{"model.image_size": 64, "data.crop": True,
                                     "data.resize": 72}) == (64, 64, 72)
    # a resize of the image size without a crop: the whole image, as DataConfig does
    assert sizes("fashion-mnist", **{"model.image_size": 64, "data.crop": None,
                                     "data.resize": 64}) == (64, None, 64)
    small = resolve_config(load_recipe("fashion-mnist"), {"model.image_size": 48}, cuda=True)
    assert (small.data.crop, small.data.resize) == (None, 48)


def test_a_size_that_disagrees_names_the_key_to_change():
    err = _errors(**{"model.image_size": 64, "data.crop": 100})
    assert err == err.splitlines()[0]
    assert "data.crop=100 disagrees with model.image_size=64" in err
    assert "Set model.image_size=100" in err
    err = _errors("fashion-mnist", **{"data.source": "fashion-mnist", "model.image_size": 64,
                                      "data.resize": 72})
    assert "data.resize=72 (no crop) disagrees with model.image_size=64" in err
    assert "data.crop=true" in err


# Every recipe, quick and full, on its own source and on others: (image_size, crop, resize,
# flip) as the recipes resolved before the sizes were derived from model.image_size.
BEFORE = [
    ('cifar4', False, '/data', 24, 24, 32, True),
    ('cifar4', False, None, 24, 24, 32, True),
    ('cifar4', False, 'cifar10', 24, 24, 32, True),
    ('cifar4', False, 'fashion-mnist', 24, 24, 32, True),
    ('cifar4', True, '/data', 24, 24, 32, True),
    ('cifar4', True, None, 24, 24, 32, True),
    ('cifar4', True, 'cifar10', 24, 24, 32, True),
    ('cifar4', True, 'fashion-mnist', 24, 24, 32, True),
    # finetune: the loaded model's size; resolved alone, the default model's
    ('finetune', False, '/data', 224, 224, 256, True),
    ('finetune', False, 'cifar10', 224, 224, 224, True),
    ('finetune', False, 'fashion-mnist', 224, 224, 224, True),
    ('finetune', True, '/data', 224, 224, 256, True),
    ('finetune', True, 'cifar10', 224, 224, 224, True),
    ('finetune', True, 'fashion-mnist', 224, 224, 224, True),
    ('fashion-mnist', False, '/data', 224, None, 224, False),
    ('fashion-mnist', False, None, 224, None, 224, False),
    ('fashion-mnist', False, 'cifar10', 224, None, 224, False),
    ('fashion-mnist', False, 'fashion-mnist', 224, None, 224, False),
    ('fashion-mnist', True, '/data', 64, None, 64, False),
    ('fashion-mnist', True, None, 64, None, 64, False),
    ('fashion-mnist', True, 'cifar10', 64, None, 64, False),
    ('fashion-mnist', True, 'fashion-mnist', 64, None, 64, False),
    ('original-exact', False, '/data', 224, 224, 256, True),
    ('original-exact', False, 'cifar10', 224, 224, 224, True),
    ('original-exact', False, 'fashion-mnist', 224, 224, 224, True),
    ('original-exact', True, '/data', 64, 64, 73, True),
    ('original-exact', True, 'cifar10', 64, 64, 224, True),
    ('original-exact', True, 'fashion-mnist', 64, 64, 224, True),
    ('original', False, '/data', 224, 224, 256, True),
    ('original', False, 'cifar10', 224, 224, 224, True),
    ('original', False, 'fashion-mnist', 224, 224, 224, True),
    ('original', True, '/data', 64, 64, 73, True),
    ('original', True, 'cifar10', 64, 64, 224, True),
    ('original', True, 'fashion-mnist', 64, 64, 224, True),
    ('paper-exact', False, '/data', 224, 224, 256, True),
    ('paper-exact', False, 'cifar10', 224, 224, 224, True),
    ('paper-exact', False, 'fashion-mnist', 224, 224, 224, True),
    ('paper-exact', True, '/data', 64, 64, 73, True),
    ('paper-exact', True, 'cifar10', 64, 64, 224, True),
    ('paper-exact', True, 'fashion-mnist', 64, 64, 224, True),
    ('paper', False, '/data', 224, 224, 256, True),
    ('paper', False, 'cifar10', 224, 224, 224, True),
    ('paper', False, 'fashion-mnist', 224, 224, 224, True),
    ('paper', True, '/data', 64, 64, 73, True),
    ('paper', True, 'cifar10', 64, 64, 224, True),
    ('paper', True, 'fashion-mnist', 64, 64, 224, True),
    ('torchvision', False, '/data', 224, 224, 256, True),
    ('torchvision', False, 'cifar10', 224, 224, 224, True),
    ('torchvision', False, 'fashion-mnist', 224, 224, 224, True),
    ('torchvision', True, '/data', 64, 64, 73, True),
    ('torchvision', True, 'cifar10', 64, 64, 224, True),
    ('torchvision', True, 'fashion-mnist', 64, 64, 224, True),
]


@pytest.mark.parametrize("recipe, quick, source, size, crop, resize, flip", BEFORE)
def test_every_recipe_resolves_to_the_sizes_it_had(recipe, quick, source, size, crop, resize,
                                                   flip):
    overrides = {} if source is None else {"data.source": source}
    cfg = resolve_config(load_recipe(recipe), overrides, cuda=not quick)
    r = cfg.data.resolved()
    assert (cfg.model.image_size, r.crop, r.resize, r.flip) == (size, crop, resize, flip)
    validate_config(cfg.with_values({"device": "cpu"}))
    assert {r for r, *_ in BEFORE} == set(list_recipes())


@pytest.mark.parametrize("stored", [
    # configs as checkpoints of the earlier version hold them (sizes stated, no derivation)
    {"model": {"name": "paper", "image_size": 64}, "data": {"source": "/d", "crop": 64,
                                                              "flip": True, "lighting": 0.1}},
    {"model": {"name": "paper"}, "data": {"source": "/d", "crop": 224}},
    {"model": {"name": "paper", "image_size": 64}, "data": {"source": "fashion-mnist",
                                                              "resize": 64}},
    {"model": {"name": "owt", "image_size": 64}, "data": {"source": "/d", "resize": 64}},
])
def test_configs_of_earlier_checkpoints_still_validate(stored):
    cfg = resolve_config({}, {"device": "cpu"}, cuda=True)
    validate_config({**cfg.to_dict(), **stored})


# ---------------------------------------------------------------- one KEY=VALUE parser

def test_one_key_value_parser():
    assert parse_overrides(["optim.lr=2e-3", "model.lrn=false", "x= [1, 2]"]) == {
        "optim.lr": 0.002, "model.lrn": False, "x": [1, 2]}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["epochs"])
    users = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")
             if 'partition("=")' in p.read_text()]
    assert users == ["schema.py"]


def test_summary_options_use_the_same_parser(capsys):
    assert main(["summary", "paper", "lrn"]) == 2
    assert "option 'lrn' is not KEY=VALUE" in capsys.readouterr().err
    assert main(["summary", "paper", "model.dropout=2e-1", "--json"]) == 0  # 0.2, not '2e-1'


# ---------------------------------------------------------------- through the CLI, before data

@pytest.fixture
def no_data(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("data was built")

    monkeypatch.setattr(alexnet.train.setup, "build_loaders", refuse)


@pytest.mark.parametrize("overrides, named", [
    (["model.lrm=false"], "model 'paper' has no option 'lrm'"),
    (["model.name=owt", "model.lrn=false"], "model 'owt' has no option 'lrn'"),
    (["data.colour=1"], "unknown config key 'data.colour'"),
    (["model.image_size=64", "data.crop=100"], "data.crop=100 disagrees with model.image_size"),
    (["epochs=x"], "epochs='x': expected a whole number"),
])
def test_cli_refuses_before_any_data_is_built(tmp_path, no_data, capsys, overrides, named):
    out = tmp_path / "run"
    assert main(["train", "--recipe", "paper", "--data", str(tmp_path / "nowhere"), "--out",
                 str(out), "device=cpu", *overrides]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("error: ") for line in err) and any(named in e for e in err), err
    assert len(err) == 1 or overrides[0] == "model.name=owt"  # and the recipe's paper options
    assert not out.exists() and not (tmp_path / "nowhere").exists()


def test_init_bias_under_xavier_init_is_refused_not_ignored():
    """Xavier init sets all biases to 0 (models/paper.py), so an init_bias there would be a
    silent no-op."""
    with pytest.raises(ConfigError, match="init=xavier sets every bias to 0"):
        validate_config(resolve_config(load_recipe("fashion-mnist"), {"model.init_bias": 0.1},
                                       cuda=False))
    validate_config(resolve_config(load_recipe("paper"), {"model.init_bias": 0.5,
                                                          "data.source": "cifar10"}, cuda=False))
