"""A run's config.yaml reproduces the run: read back as a recipe it resolves to itself (QUICK is
not applied twice, the recipe keeps its name) and trains the same weights, bit for bit on the CPU
with deterministic=true. `--print-config` shows the config without building anything, and the
printed full-run command resolves to the same data and overrides."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch
import yaml

from alexnet.cli import main
from alexnet.errors import ConfigError
from alexnet.recipes import load_recipe
from alexnet.train.run_config import RunConfig, dump_config, resolve_config
from alexnet.train.setup import full_command
from conftest import colour_class_tree

# A QUICK `paper` run (no CUDA here) made small: 2 epochs of 3 batches of 64-px crops.
SMALL = ["epochs=2", "batch_size=8", "train_batches=3", "deterministic=true", "device=cpu",
         "data.workers=0", "log_every=1", "seed=3"]


def _config(run: Path) -> dict:
    return yaml.safe_load((run / "config.yaml").read_text())


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "last.pt", weights_only=True)["model"]["state_dict"]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return colour_class_tree(tmp_path_factory.mktemp("repro") / "images", per_class=12)


def test_retraining_from_config_yaml_gives_the_same_config_and_weights(images, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", "--recipe", "paper", "--data", str(images), "--out", str(first),
                 *SMALL]) == 0
    saved = _config(first)
    assert saved["recipe"] == "paper" and saved["quick"] is True
    assert (saved["epochs"], saved["batch_size"]) == (2, 8)  # the overrides win over QUICK's
    assert saved["origin"]["recipe"] == "paper" and saved["origin"]["overrides"]["seed"] == 3

    assert main(["train", "--recipe", str(first / "config.yaml"), "--data", str(images),
                 "--out", str(second)]) == 0
    again = _config(second)
    assert again["origin"]["recipe"] == str(first / "config.yaml")
    assert {k: v for k, v in again.items() if k != "origin"} == \
        {k: v for k, v in saved.items() if k != "origin"}
    a, b = _weights(first), _weights(second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_config_yaml_resolves_to_itself(tmp_path):
    cfg = resolve_config(load_recipe("fashion-mnist"), {"epochs": 1, "batch_size": 16},
                         cuda=False, source="fashion-mnist")
    assert (cfg.quick, cfg.epochs, cfg.batch_size, cfg.model.image_size) == (True, 1, 16, 64)
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(cfg))
    back = resolve_config(load_recipe(str(path)), cuda=False, source=str(path))
    assert back.recipe == "fashion-mnist" and back.description == cfg.description
    assert back.to_dict() | {"origin": {}} == cfg.to_dict() | {"origin": {}}
    with pytest.raises(ConfigError, match="resolved QUICK config.*--recipe fashion-mnist --full"):
        resolve_config(load_recipe(str(path)), {"quick": False}, source=str(path))


def test_print_config_builds_nothing(images, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["train", "--recipe", "paper", "--data", str(images), "--out", str(out),
                 "--print-config", *SMALL]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert not out.exists()
    assert RunConfig.from_dict(printed).data.source == str(images)
    assert printed["epochs"] == 2 and printed["quick"] is True


def test_the_full_run_hint_keeps_the_recipe_data_and_overrides(images, capsys):
    cfg = resolve_config(load_recipe("paper"), {"data.source": str(images), "optim.lr": 0.02,
                                                "model.lrn": False}, cuda=False, source="paper")
    hint = full_command(cfg).split("   (")[0]
    words = shlex.split(hint)
    assert words[:2] == ["alexnet", "train"] and words[-1] == "--full"
    assert main([*words[1:], "--print-config"]) == 0
    full = RunConfig.from_dict(yaml.safe_load(capsys.readouterr().out))
    assert (full.recipe, full.data.source, full.quick) == ("paper", str(images), False)
    assert full.optim.lr == 0.02 and full.model.options["lrn"] is False
    assert full.epochs == 90  # QUICK's shortening is gone


def test_alexnet_train_in_python_returns_the_run(images, tmp_path):
    import alexnet

    run = alexnet.train(recipe="paper", data=images, out=tmp_path / "py", epochs=1,
                        batch_size=8, train_batches=2, device="cpu", optim={"lr": 0.005},
                        overrides=["data.workers=0"])
    assert not run.interrupted and run.dir == tmp_path / "py"
    assert (run.config.recipe, run.config.epochs, run.config.optim.lr) == ("paper", 1, 0.005)
    assert [r["split"] for r in run.metrics] == ["train", "val"]
    assert run.best_checkpoint == run.dir / "best.pt"
    assert alexnet.train.Run.open(run.dir).metrics == run.metrics


def test_resume_refuses_a_last_pt_copied_from_another_run(images, tmp_path, capsys):
    import shutil

    tiny = ["epochs=2", "batch_size=8", "train_batches=1", "device=cpu", "data.workers=0"]
    for name, model in (("mine", "paper"), ("other", "half")):
        assert main(["train", "--recipe", "paper", "--data", str(images), "--out",
                     str(tmp_path / name), f"model.name={model}", *tiny]) == 0
    shutil.copy(tmp_path / "other" / "last.pt", tmp_path / "mine" / "last.pt")
    before = (tmp_path / "mine" / "metrics.jsonl").read_text()
    assert main(["train", "--resume", str(tmp_path / "mine"), "epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "is not this run's checkpoint" in err and "model 'half'" in err
    assert "model.name: 'half' (this run: 'paper')" in err
    assert (tmp_path / "mine" / "metrics.jsonl").read_text() == before  # nothing mixed in
