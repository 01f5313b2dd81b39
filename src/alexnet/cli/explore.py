"""`alexnet explore`: parse and dispatch to alexnet.explore.serve."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `explore` to the `alexnet` parser."""
    p = subparsers.add_parser(
        "explore", help="a local web page to see what a network learned",
        description="Start a local web server with a page that shows a checkpoint's top-5 "
                    "(centre and ten views, §4.1), its layers' activation maps (two towers "
                    "side by side), conv1's kernels and their colour per tower (Fig. 3), "
                    "where it looks (occlusion, Grad-CAM), neighbours in fc7 space (Fig. 4) "
                    "and by §6.1's binary codes, and each unit's strongest dataset images. "
                    "Needs the `explore` extra.")
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT",
                   help="run folder or .pt file (or `torchvision`)")
    p.add_argument("--data", help="data source to pick images from and search (default: the "
                                  "checkpoint's own, when it can be opened)")
    p.add_argument("--compare", metavar="OTHER", help="a second checkpoint, side by side")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free)")
    p.add_argument("--limit", type=int, default=2000, metavar="N",
                   help="training images searched for neighbours and units, spread over the "
                        "split (default 2000; the pass runs once and is cached in "
                        "RUN/explore-cache/)")
    p.set_defaults(func=_explore)


def _explore(args: argparse.Namespace) -> int:
    from alexnet.explore import serve

    serve(args.checkpoint, data=args.data, compare=args.compare, host=args.host,
          port=args.port, limit=max(1, args.limit))
    return 0
