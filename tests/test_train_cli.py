"""`alexnet recipes` and `alexnet train` argument handling (dispatch only, no training)."""

import torch.distributed.run

from alexnet.cli import main


def test_recipes_lists_the_shipped_presets(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("fashion-mnist (default)")
    assert all(name in out for name in ("paper", "original", "torchvision"))


def test_train_errors_are_printed_without_a_traceback(capsys):
    assert main(["train", "--recipe", "paper"]) == 2
    assert "needs a dataset: pass --data" in capsys.readouterr().err
    assert main(["train", "optim.lrr=1"]) == 2
    assert "unknown config key 'optim.lrr'" in capsys.readouterr().err
    assert main(["train", "--resume", "/nonexistent/run"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_gpus_relaunches_through_torchrun(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(torch.distributed.run, "main", seen.append)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    argv = ["train", "--gpus", "2", "--recipe", "paper", "--data", "/d", "--out", "/r"]
    assert main([*argv, "epochs=3"]) == 2  # no CUDA: refused before torchrun starts
    assert "CUDA is not available" in capsys.readouterr().err and seen == []
    assert main([*argv, "epochs=3", "device=cpu"]) == 0  # CPU processes, asked for
    assert main([*argv, "--device", "cpu", "epochs=3"]) == 0
    head = ["--standalone", "--nproc_per_node=2", "-m", "alexnet", "train",
            "--recipe=paper", "--data=/d", "--out=/r"]
    assert seen == [[*head, "epochs=3", "device=cpu"], [*head, "device=cpu", "epochs=3"]]
