"""`alexnet import caffe`: another framework's trained weights as an ordinary checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from alexnet.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `import caffe` to the `alexnet` parser."""
    p = subparsers.add_parser("import", help="convert pretrained weights into a checkpoint",
                              description="Convert another framework's trained AlexNet into a "
                                          "checkpoint every command accepts.")
    sub = p.add_subparsers(dest="source", metavar="SOURCE", required=True)
    c = sub.add_parser("caffe", help="Caffe's bvlc_alexnet (.caffemodel) onto the paper model",
                       usage="alexnet import caffe [-h] [DEPLOY.prototxt] WEIGHTS.caffemodel "
                             "--out CKPT [--mean MEAN.binaryproto]",
                       description="Read Caffe's bvlc_alexnet.caffemodel (BVLC model zoo) "
                                   "without Caffe and write the `paper` model (input 227, "
                                   "Caffe's LRN k=1 across both towers) with its weights, "
                                   "Caffe's preprocessing and the ILSVRC-2012 classes.")
    c.add_argument("files", nargs="+", metavar="FILE",
                   help="[DEPLOY.prototxt] WEIGHTS.caffemodel: the weights, optionally after "
                        "the deploy .prototxt, whose layer parameters are then checked instead "
                        "of those the weights file stores")
    c.add_argument("--out", required=True, metavar="CKPT",
                   help="checkpoint to write, e.g. paper-caffe.pt")
    c.add_argument("--mean", default=None, metavar="MEAN.binaryproto",
                   help="Caffe's mean image (imagenet_mean.binaryproto, 3x256x256 BGR) to "
                        "subtract instead of its per-channel mean (BGR 104.0, 116.7, 122.7)")
    c.set_defaults(func=cmd_import_caffe)


def cmd_import_caffe(args: argparse.Namespace) -> int:
    from alexnet.weights.caffe import caffe_checkpoint
    from alexnet.weights.checkpoint import save_checkpoint

    if len(args.files) > 2:
        raise ConfigError(f"expected [DEPLOY.prototxt] WEIGHTS.caffemodel, got {len(args.files)} "
                          f"files: {' '.join(args.files)}")
    if len(args.files) == 2 and args.files[0].endswith(".caffemodel") \
            and args.files[1].endswith(".prototxt"):
        args.files.reverse()  # the usual order is deploy, weights; the suffixes say which is which
    *deploy, weights = args.files
    out = Path(args.out)
    for given in [weights, *deploy, args.mean]:
        if given is not None and _same_file(out, Path(given)):
            raise ConfigError(f"--out {out} is the input file {given}; write the checkpoint "
                              "to another path")
    state = caffe_checkpoint(weights, deploy=deploy[0] if deploy else None, mean=args.mean)
    save_checkpoint(state, out)
    _print_summary(state, out)
    return 0


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return a.samefile(b)
    return a.resolve() == b.resolve()


def _print_summary(state: dict, out: Path) -> None:
    config = state["model"]["config"]
    params = sum(t.numel() for t in state["model"]["state_dict"].values())
    mean = state["data"]["normalization"]["mean"]
    expected = state["pretrained"]["expected"]
    mean_text = ("mean image 3x256x256" if mean.shape[-1] > 1 else
                 "mean RGB " + ", ".join(f"{v:.1f}" for v in mean.flatten().tolist()))
    print(f"imported {state['pretrained']['file']}: {' '.join(state['pretrained']['layers'])} "
          f"({params:,} parameters)")
    print(f"model {config['name']}: input {config['image_size']}, LRN k={config['lrn_k']:g} "
          f"across both towers, dropout scaled in training; {len(state['classes'])} ILSVRC "
          "classes")
    print(f"preprocessing: shorter side 256, centre 256 square, centre {config['image_size']} "
          f"crop, {mean_text}, std 1 (pixels 0..255)")
    print(f"wrote {out}")
    print(f"expected on ILSVRC-2012 val, centre crop: top-1 error {expected['top1_err']:.1%}, "
          f"top-5 error {expected['top5_err']:.1%} ({expected['note']})")
    print(f"next: alexnet eval {out} --data /path/to/ILSVRC2012/val-prepared --views center")
    print(f"      alexnet predict {out} photo.jpg")
