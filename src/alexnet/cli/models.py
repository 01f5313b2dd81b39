"""Commands of this group (placeholder until its part lands)."""

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `alexnet` parser."""
