"""The `alexnet` command: parses arguments and dispatches; no logic of its own.

Every command module is imported to build the parser, so each imports what its commands run
(torchvision, matplotlib, the training stack) inside the command function: `alexnet --help`
and `alexnet models` do not pay seconds for the imports of `alexnet train` or `alexnet report`.
This is the package's one exception to imports at the top of a module.

The flags shared by the commands (`--device`, `--out`, `--json`, ...) are declared once in
`cli/flags.py`; docs/CLI.md lists them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from importlib import metadata

from alexnet import __version__
from alexnet.cli.flags import HelpFormatter, wants_json
from alexnet.errors import AlexNetError

# One module per command group; each exposes register(subparsers).
COMMAND_MODULES = ("models", "data", "train", "evaluation", "bench", "imports", "experiment",
                   "explore", "completion")
BROKEN_PIPE_EXIT = 128 + 13  # what a shell reports for a process ended by SIGPIPE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alexnet", formatter_class=HelpFormatter,
        description="AlexNet (Krizhevsky, Sutskever & Hinton, 2012) in PyTorch.")
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"alexnet.cli.{name}")
        module.register(subparsers)
    for sub in _parsers(parser):  # defaults in every --help; usage errors name the command
        sub.formatter_class = HelpFormatter
        sub.set_defaults(command_parser=sub)
    return parser


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`parser` and every sub-command parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from _parsers(sub)


def _version() -> str:
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = "not installed"
    return f"alexnet {__version__} (torch {torch}, Python {sys.version.split()[0]})"


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:  # `alexnet ... | head`: stop quietly, as Unix tools do
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the exit's own flush must not fail again
        return BROKEN_PIPE_EXIT


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # KEY=VALUE overrides after an option (`train --data X epochs=3 --out Y lr=…`)
        if isinstance(getattr(args, "overrides", None), list) and all(
                "=" in e and not e.startswith("-") for e in extra):
            args.overrides += extra
        else:  # the command's own usage, not the top-level one
            getattr(args, "command_parser", parser).error(
                f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if not wants_json(args):
            return int(args.func(args) or 0)
        args.stdout = sys.stdout  # the result; everything else the command prints: stderr
        with contextlib.redirect_stdout(sys.stderr):
            return int(args.func(args) or 0)
    except BrokenPipeError:
        raise
    except AlexNetError as err:  # one `error:` line per problem (a config may have several)
        for line in str(err).splitlines() or [type(err).__name__]:
            print(f"error: {line}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. an output path under a file, a full disk, no permission
        where = f"cannot use {err.filename}: " if getattr(err, "filename", None) else ""
        print(f"error: {where}{err.strerror or err}; check the path and try again",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
