"""The command line agrees with itself (docs/CLI.md): every command's --help shows its defaults
and the shared flags, --json output parses, output cut short by a closed pipe ends quietly,
files get the umask's permissions, old spellings still work with a note."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from alexnet.atomic import write_text
from alexnet.cli import build_parser, main
from alexnet.cli.flags import flag_overrides
from alexnet.errors import CheckpointError
from conftest import eval_images, register_eval_data, write_checkpoint

SRC = Path(__file__).resolve().parents[1] / "src"

# Every command, with the shared flags it must take (docs/CLI.md's table).
COMMANDS: dict[str, set[str]] = {
    "models": {"--json"},
    "summary": {"--json"},
    "prepare": {"--json"},
    "train": {"--device", "--batch-size", "--out", "--json"},
    "recipes": {"--json"},
    "eval": {"--device", "--batch-size", "--out", "--json"},
    "predict": {"--device", "--topk", "--out", "--json"},
    "features": {"--device", "--batch-size", "--out", "--json"},
    "neighbors": {"--device", "--topk", "--out", "--json"},
    "retrieval": {"--device", "--batch-size", "--topk", "--limit", "--out", "--json"},
    "kernels": {"--out", "--json"},
    "report": {"--device", "--batch-size", "--limit", "--out", "--json"},
    "export": {"--out", "--json"},
    "bench train": {"--device", "--batch-size", "--json"},
    "bench lrn": {"--device", "--json"},
    "bench data": {"--device", "--batch-size", "--json"},
    "import caffe": {"--out"},
    "experiment list": {"--json"},
    "experiment run": {"--device", "--out", "--json"},
    "experiment report": {"--json"},
    "completion": set(),
    "explore": {"--limit"},
}
NO_DEFAULT = (None, False, argparse.SUPPRESS)


def _leaves(parser: argparse.ArgumentParser, path: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every command that runs (no sub-commands of its own), by its words."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {path.strip(): parser}
    found: dict[str, argparse.ArgumentParser] = {}
    for name, sub in subs[0].choices.items():
        found.update(_leaves(sub, f"{path} {name}"))
    return found


LEAVES = _leaves(build_parser())


def test_the_table_names_every_command() -> None:
    assert set(LEAVES) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_shows_defaults_and_the_shared_flags(command: str) -> None:
    parser = LEAVES[command]
    text = " ".join(parser.format_help().split())
    options = {s for a in parser._actions for s in a.option_strings if a.help != argparse.SUPPRESS}
    assert COMMANDS[command] <= options, f"{command}: missing {COMMANDS[command] - options}"
    assert f"usage: alexnet {command}" in text
    for action in parser._actions:
        default = action.default
        if (not action.option_strings or action.help == argparse.SUPPRESS
                or default in NO_DEFAULT or default == [] or default == ()
                or isinstance(action, argparse._HelpAction | argparse._VersionAction)):
            continue
        helped = " ".join(parser._get_formatter()._expand_help(action).split())
        assert "default" in helped.lower(), f"{command} {action.option_strings}: {helped!r}"


def test_version_and_completion(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("alexnet ")
    pytest.importorskip("shtab")
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "alexnet" in script and "retrieval" in script and "--topk" in script


def test_a_usage_error_shows_the_command_usage(capsys: pytest.CaptureFixture) -> None:
    for argv, usage in ((["summary", "paper", "--bogus"], "usage: alexnet summary"),
                        (["experiment", "run", "lrn", "--bogus"],
                         "usage: alexnet experiment run")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and usage in err and "--bogus" in err


def test_overrides_have_one_syntax(capsys: pytest.CaptureFixture) -> None:
    assert main(["summary", "paper", "model.lrn=false", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["lrn"] is False
    assert main(["summary", "paper", "-o", "lrn=false", "--json"]) == 0  # the old spelling
    captured = capsys.readouterr()
    assert json.loads(captured.out)["model"]["lrn"] is False
    assert captured.err.count("\n") == 1 and "-o is deprecated" in captured.err
    args = build_parser().parse_args(["train", "--device", "cpu", "--batch-size", "8",
                                      "epochs=1"])
    assert flag_overrides(args, {"device": "device", "batch_size": "batch_size"}) == [
        "device=cpu", "batch_size=8", "epochs=1"]


@pytest.mark.parametrize("argv, dest, value", [
    (["neighbors", "f.pt", "q.png", "-k", "3"], "topk", 3),
    (["retrieval", "c.pt", "-k", "2"], "topk", 2),
    (["predict", "c.pt", "q.png", "--figure", "f.png"], "out", "f.png"),
    (["eval", "c.pt", "--confusion-png", "cm.png"], "out", "cm.png"),
    (["kernels", "c.pt", "--figure", "k.png"], "out", "k.png"),
])
def test_old_spellings_work_with_a_note(argv, dest, value, capsys) -> None:
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deprecated" in err


def _tree(root: Path) -> Path:
    x, y = eval_images(8, classes=2)
    for i, (img, label) in enumerate(zip(x, y.tolist(), strict=True)):
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize("argv", [["summary", "half"], ["recipes"], ["recipes", "--keys"],
                                  ["experiment", "list"]])  # models --json: test_cli_models
def test_json_output_parses(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)


def test_json_of_a_command_that_writes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """prepare: the result on stdout as JSON, its progress elsewhere; 0644 files under 022."""
    old = os.umask(0o022)
    try:
        assert main(["prepare", str(_tree(tmp_path / "src")), str(tmp_path / "out"),
                     "--workers", "0", "--size", "32", "--json"]) == 0
    finally:
        os.umask(old)
    result = json.loads(capsys.readouterr().out)
    assert result["counts"]["train"] + result["counts"]["val"] == 8
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "out").iterdir()
             if p.is_file() and not p.name.startswith(".")}
    assert modes and set(modes.values()) == {0o644}, modes


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_umask_permissions(tmp_path: Path, mask: int, mode: int) -> None:
    old = os.umask(mask)
    try:
        path = write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("argv", [["recipes", "--keys"], ["recipes", "--json"],
                                  ["--help"]])
def test_a_closed_pipe_ends_quietly(argv: list[str]) -> None:
    """`alexnet ... | head -1` where head has already gone: no message, a quiet exit."""
    read, write = os.pipe()
    os.close(read)  # closed before the command writes: its first write fails
    try:
        done = subprocess.run([sys.executable, "-m", "alexnet", *argv], stdout=write,
                              stderr=subprocess.PIPE, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(SRC)})
    finally:
        os.close(write)
    assert done.returncode in (0, 141) and done.stderr == b"", done.stderr.decode()


def test_predict_caps_topk_at_the_classes(tmp_path: Path, capsys) -> None:
    ckpt = write_checkpoint(tmp_path / "m.pt", classes=2)
    x, _ = eval_images(1)
    Image.fromarray(x[0].permute(1, 2, 0).numpy()).save(tmp_path / "q.png")
    assert main(["predict", str(ckpt), str(tmp_path / "q.png"), "--topk", "5", "--json",
                 "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)[0]["predictions"]) == 2
    assert "--topk 5 capped at 2" in captured.err


def test_eval_refuses_other_classes_before_the_statistics(tmp_path: Path, monkeypatch) -> None:
    from alexnet.data import loaders
    from alexnet.data.memory import unregister
    from alexnet.evaluation.checkpoints_eval import evaluate_checkpoints

    ckpt = write_checkpoint(tmp_path / "m.pt", classes=2)
    ten = register_eval_data("cli-consistency-ten", classes=10)

    def refuse(*args, **kwargs):
        raise AssertionError("the statistics were computed before the classes were checked")

    monkeypatch.setattr(loaders, "_statistics", refuse)
    try:
        with pytest.raises(CheckpointError, match="expected 10 classes"):
            evaluate_checkpoints([str(ckpt)], ten["source"], device="cpu", progress=False)
    finally:
        unregister("cli-consistency-ten")




HINT = re.compile(r"`alexnet ([a-z][a-z-]*)((?: [a-z][a-z-]*)?)([^`]*)`")


def test_every_command_in_a_hint_exists_with_its_flags() -> None:
    """The `alexnet ...` commands the package prints as advice name commands and options that
    exist, in today's spelling (no deprecated ones)."""
    problems = []
    for path in sorted((SRC / "alexnet").rglob("*.py")):
        for first, second, rest in HINT.findall(path.read_text(encoding="utf-8")):
            words = f"{first}{second}"
            leaf = LEAVES.get(words) or LEAVES.get(first)
            if leaf is None:
                if words.split()[0] not in {w.split()[0] for w in LEAVES}:
                    problems.append(f"{path.name}: `alexnet {words}` is no command")
                continue
            shown = {s for a in leaf._actions for s in a.option_strings
                     if a.help != argparse.SUPPRESS}
            problems += [f"{path.name}: `alexnet {words}{rest}`: no option {flag}"
                         for flag in re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", rest)
                         if flag not in shown and not (second and flag in _options(first))]
    assert not problems, "\n".join(problems)


def _options(words: str) -> set[str]:
    return {s for w, p in LEAVES.items() if w.startswith(words)
            for a in p._actions for s in a.option_strings if a.help != argparse.SUPPRESS}
