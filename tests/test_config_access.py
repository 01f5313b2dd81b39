"""The run config is read by attribute (`cfg.optim.lr`) everywhere but in the config module,
which parses recipes and overrides as nested mappings before they become a `RunConfig`."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "alexnet"
CONFIG_MODULE = SRC / "train" / "run_config.py"
# cfg["optim"], cfg.get("seed"), run.cfg["epochs"], config["schedule"]: a run config read by key
STRING_KEYED = re.compile(r"""\bcfg(\[["']|\.get\(["'])|\[["'](optim|schedule|finetune)["']\]""")


def test_no_string_keyed_run_config_outside_the_config_module():
    found = [f"{path.relative_to(SRC)}:{n}: {line.strip()}"
             for path in sorted(SRC.rglob("*.py")) if path != CONFIG_MODULE
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if STRING_KEYED.search(line)]
    assert not found, "read the run config by attribute:\n" + "\n".join(found)


def test_the_pattern_catches_what_it_is_for():
    for line in ('lr = cfg["optim"]["lr"]', "cfg.get('seed')", 'x = state["config"]["optim"]'):
        assert STRING_KEYED.search(line), line
    assert not STRING_KEYED.search("lr = cfg.optim.lr")
