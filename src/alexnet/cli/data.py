"""`alexnet prepare SRC DEST`: the packed 256×256 dataset with its mean image and PCA."""

from __future__ import annotations

import argparse

from alexnet.cli import flags


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `alexnet` parser."""
    p = subparsers.add_parser(
        "prepare", help="write an image tree (e.g. ILSVRC-2012) as the packed 256x256 dataset",
        description="Shorter side -> SIZE, central SIZExSIZE (paper §2), stored as JPEG bytes "
                    "in one file per split, with the training set's mean image and RGB PCA. "
                    "Unreadable files are skipped and listed in DEST/skipped.txt.")
    p.add_argument("src", metavar="SRC", help="class-per-folder image tree or ILSVRC-2012 tree")
    p.add_argument("dest", metavar="DEST", help="output folder")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality 1-100")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per CPU core)")
    p.add_argument("--size", type=int, default=256, help="image side (§2)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="held out per class when SRC has no val/ folder")
    flags.add_json(p)
    p.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    from alexnet.data.prepare import prepare

    meta = prepare(args.src, args.dest, size=args.size, quality=args.quality,
                   workers=args.workers, val_fraction=args.val_fraction)
    if args.json:
        flags.emit_json(args, {**meta, "dest": str(args.dest)})
        return 0
    if meta["already"]:
        print(f"{args.dest} is already prepared from {meta['source']}: nothing to do")
        return 0
    counts = meta["counts"]
    print(f"prepared {args.dest}: {counts['train']} training and {counts['val']} validation "
          f"images, {len(meta['classes'])} classes, {meta['size']}x{meta['size']} JPEG "
          f"quality {meta['quality']}")
    if meta["skipped"]:
        print(f"skipped {meta['skipped']} unreadable file(s), listed in "
              f"{args.dest}/skipped.txt:")
        for path, reason in meta["skipped_files"][:10]:
            print(f"  {path}: {reason}")
    return 0
