"""`alexnet completion SHELL`: the shell completion script (shtab), to source or install."""

from __future__ import annotations

import argparse

from alexnet.errors import ConfigError

SHELLS = ("bash", "zsh", "tcsh")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `completion` to the `alexnet` parser."""
    p = subparsers.add_parser(
        "completion", help="print the shell completion script",
        description="Print the completion script for SHELL. Enable it for this shell with "
                    "`eval \"$(alexnet completion bash)\"` (put that line in ~/.bashrc to keep "
                    "it), or install it once: `alexnet completion bash > "
                    "~/.local/share/bash-completion/completions/alexnet`; zsh: `alexnet "
                    "completion zsh > ~/.zfunc/_alexnet` with ~/.zfunc on $fpath.")
    p.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    p.set_defaults(func=_completion)


def _completion(args: argparse.Namespace) -> int:
    from alexnet.cli import build_parser

    try:
        import shtab  # a dependency (pyproject.toml); imported only by this command
    except ImportError:
        raise ConfigError("shell completion needs the `shtab` package: pip install shtab") \
            from None
    print(shtab.complete(build_parser(), shell=args.shell))
    return 0
