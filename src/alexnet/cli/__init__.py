"""The `alexnet` command: parses arguments and dispatches; no logic of its own.

Every command module is imported to build the parser, so each imports what its commands run
(torchvision, matplotlib, the training stack) inside the command function: `alexnet --help`
and `alexnet models` do not pay seconds for the imports of `alexnet train` or `alexnet report`.
This is the package's one exception to imports at the top of a module.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from alexnet.errors import AlexNetError

# One module per command group; each exposes register(subparsers).
COMMAND_MODULES = ("models", "data", "train", "evaluate", "bench", "imports", "experiment",
                   "explore")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alexnet",
        description="AlexNet (Krizhevsky, Sutskever & Hinton, 2012) in PyTorch.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"alexnet.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # KEY=VALUE overrides after an option (`train --data X epochs=3 --out Y lr=…`)
        if isinstance(getattr(args, "overrides", None), list) and all(
                "=" in e and not e.startswith("-") for e in extra):
            args.overrides += extra
        else:
            parser.parse_args(argv)  # argparse's own message for what it does not know
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
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
