"""The flags that mean the same in every command, declared once (docs/CLI.md lists them).

One spelling per idea: `--device`, `--batch-size`, `--out`, `--json`, `--topk`, `--limit` and
KEY=VALUE overrides. An older spelling still works, with a one-line note on stderr, through
`deprecated`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

OVERRIDE_SYNTAX = "KEY=VALUE: dotted keys, YAML values (e.g. model.lrn=false optim.lr=0.02)"
_NO_DEFAULT = (None, False, argparse.SUPPRESS)


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already names one or there
    is nothing to show (None, False, an empty list)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default in _NO_DEFAULT
                or (isinstance(default, list | tuple) and not default)
                or not action.option_strings):
            return text
        shown = " ".join(map(str, default)) if isinstance(default, list | tuple) else "%(default)s"
        return f"{text} (default: {shown})"


class _Deprecated(argparse.Action):
    """An older spelling: does what the new flag does, after a one-line note on stderr."""

    def __init__(self, option_strings: list[str], dest: str, *, new: str,
                 append: bool = False, **kwargs: Any) -> None:
        self.new, self.append = new, append
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"note: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        if self.append:
            setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), values])
        else:
            setattr(namespace, self.dest, values)


def deprecated(p: argparse.ArgumentParser, *old: str, new: str, dest: str,
               append: bool = False, **kwargs: Any) -> None:
    """Accept `old` spellings of `new` (hidden from --help), with a note when used."""
    p.add_argument(*old, dest=dest, action=_Deprecated, new=new, append=append,
                   help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def positive(text: str) -> int:
    """A whole number >= 1 (batch sizes, k, chunk sizes, top-k)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def limit_value(text: str) -> int | None:
    """--limit: a positive number of images, or `all` (None)."""
    return None if text == "all" else positive(text)


def limit_or_auto(text: str) -> int | str | None:
    """--limit where the command can choose: N, `all`, or `auto`."""
    return "auto" if text == "auto" else limit_value(text)


def add_device(p: argparse.ArgumentParser, default: str | None = "auto",
               help: str = "where to run: auto, cpu, cuda, cuda:1") -> None:
    p.add_argument("--device", default=default, help=help)


def add_batch_size(p: argparse.ArgumentParser, default: int | None = 128,
                   help: str = "images per batch") -> None:
    p.add_argument("--batch-size", type=positive, default=default, metavar="N", help=help)


def add_out(p: argparse.ArgumentParser, help: str, *, default: str | None = None,
            metavar: str = "PATH", required: bool = False, old: Sequence[str] = ()) -> None:
    """`--out`: the file or folder the command writes (its older names in `old`)."""
    p.add_argument("--out", default=default, metavar=metavar, required=required, help=help)
    if old:
        deprecated(p, *old, new="--out", dest="out", metavar=metavar)


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON on stdout (progress and notes go to stderr)")


def add_topk(p: argparse.ArgumentParser, default: int, help: str,
             old: Sequence[str] = ()) -> None:
    p.add_argument("--topk", type=positive, default=default, metavar="K", help=help)
    if old:
        deprecated(p, *old, new="--topk", dest="topk", type=positive, metavar="K")


def add_limit(p: argparse.ArgumentParser, help: str, default: Any = None, *,
              auto: bool = False) -> None:
    """`--limit N|all` (`auto` too where the command picks by itself)."""
    p.add_argument("--limit", type=limit_or_auto if auto else limit_value, default=default,
                   metavar="N|all|auto" if auto else "N|all", help=help)


def add_overrides(p: argparse.ArgumentParser, help: str) -> None:
    """The positional KEY=VALUE overrides (also accepted between later options: cli.main)."""
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help=f"{help}; {OVERRIDE_SYNTAX}")


def wants_json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def emit_json(args: argparse.Namespace, result: Any) -> None:
    """The command's result as JSON on the real stdout (cli.main sends the rest to stderr)."""
    out = getattr(args, "stdout", None) or sys.stdout
    print(json.dumps(result, indent=2, default=str, ensure_ascii=False), file=out, flush=True)


def flag_overrides(args: argparse.Namespace, mapping: dict[str, str]) -> list[str]:
    """KEY=VALUE for flags that set a config key (`--device cpu` -> `device=cpu`), placed
    before the explicit overrides, which win."""
    pairs = [f"{key}={getattr(args, dest)}" for dest, key in mapping.items()
             if getattr(args, dest, None) is not None]
    return pairs + list(getattr(args, "overrides", None) or [])
