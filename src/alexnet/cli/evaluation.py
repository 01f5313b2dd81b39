"""`alexnet eval | predict | features | neighbors | retrieval | kernels | report | export`:
parse and dispatch to alexnet.evaluation and alexnet.figures.

Each command imports its implementation when it runs: `alexnet.cli` imports every command
module to build its parser, and torch, torchvision and matplotlib take seconds to import, which
`alexnet --help` and the other commands should not pay.
"""

from __future__ import annotations

import argparse
import sys

from alexnet.cli import flags
from alexnet.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `alexnet` parser."""
    common = argparse.ArgumentParser(add_help=False)
    flags.add_device(common)
    ckpt_help = (".pt file or run folder; a .safetensors export or a save_pretrained folder; "
                 "or pretrained weights: `torchvision` (its ImageNet AlexNet, from the torch "
                 "hub cache) or a .pth state dict in torchvision's layout")

    p = subparsers.add_parser(
        "eval", parents=[common], help="top-1/top-5 error of checkpoints (ensembles: §6)",
        description="Top-1 and top-5 error of one checkpoint, or of the softmax average of "
                    "several (§6's ensembles), with centre or ten-view testing (§4.1).")
    p.add_argument("checkpoints", nargs="+", metavar="CKPT", help=ckpt_help)
    p.add_argument("--data", help="data source (default: the checkpoint's own; pretrained "
                                  "weights need one, e.g. an ILSVRC-2012 folder)")
    p.add_argument("--views", choices=("center", "ten"), default="center",
                   help="centre crops, or §4.1's ten views (corners, centre, mirrors)")
    flags.add_batch_size(p)
    p.add_argument("--amp", action="store_true",
                   help="bf16 autocast, as training's validation with amp=true (on CUDA or a "
                        "CPU with native bf16); default fp32")
    p.add_argument("--per-class", action="store_true", help="per-class top-1 accuracy")
    p.add_argument("--confusion", action="store_true", help="the confusion matrix")
    flags.add_out(p, "draw the confusion matrix to FILE (.png)", metavar="FILE",
                  old=("--confusion-png",))
    flags.add_json(p)
    p.set_defaults(func=_eval)

    p = subparsers.add_parser(
        "predict", parents=[common], help="top-k classes of image files",
        description="Top-k classes with probabilities for image files; a file that cannot be "
                    "read gets an error line, the others are still answered.")
    p.add_argument("checkpoint", metavar="CKPT",
                   help=ckpt_help + "; with --weights torchvision: the model name (owt)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    flags.add_topk(p, 5, "classes per image (at most the model's classes)", old=("-k",))
    p.add_argument("--views", choices=("center", "ten"), default="center",
                   help="centre crop, or §4.1's ten views averaged")
    p.add_argument("--weights", choices=("torchvision",),
                   help="use torchvision's pretrained ImageNet weights (model owt); the same as "
                        "CKPT `torchvision`")
    flags.add_out(p, "also draw Fig. 4 (left) to FILE (.png)", metavar="FILE",
                  old=("--figure",))
    flags.add_json(p)
    p.set_defaults(func=_predict)

    p = subparsers.add_parser(
        "features", parents=[common], help="4096-d last-hidden-layer features of a dataset",
        description="§6.1: the 4096-d last hidden layer (or another layer) for every image of "
                    "a split, saved to a file for `alexnet neighbors`.")
    p.add_argument("checkpoint", metavar="CKPT", help=ckpt_help)
    p.add_argument("--data", help="data source (default: the checkpoint's own; pretrained "
                                  "weights need one)")
    p.add_argument("--layer", choices=("conv5", "pool5", "fc6", "fc7"), default="fc7",
                   help="fc7 (default, §6.1: 4096-d, after ReLU), fc6 (4096), pool5 (9216 at "
                        "224) or conv5 (after ReLU, 43264 at 224: large files)")
    p.add_argument("--split", choices=("train", "val"), default="train",
                   help="the images to describe")
    flags.add_out(p, "output file (.pt; default: next to the checkpoint, "
                     "<name>-features-LAYER-SPLIT.pt, in a run folder features-LAYER-SPLIT.pt)",
                  metavar="FILE")
    flags.add_batch_size(p)
    p.add_argument("--codes", type=flags.positive, nargs="+", metavar="BITS", default=(),
                   help="also store §6.1's short binary codes of BITS bits (e.g. 64 128 256), "
                        "from an auto-encoder trained on these features, for `neighbors "
                        "--hamming`")
    flags.add_json(p)
    p.set_defaults(func=_features)

    p = subparsers.add_parser(
        "neighbors", parents=[common], help="nearest stored images of query images (Fig. 4)",
        description="For each query image, the images of a features file nearest in "
                    "Euclidean distance of the 4096-d features (§6.1), drawn as Fig. 4 right.")
    p.add_argument("features", metavar="FEATURES", help="file made by `alexnet features`")
    p.add_argument("queries", nargs="+", metavar="IMAGE", help="query image files")
    flags.add_topk(p, 6, "neighbours per query (Fig. 4: 6)", old=("-k",))
    p.add_argument("--checkpoint", help="the model for the queries (default: the one the "
                                        "features were made with)")
    flags.add_out(p, "draw the neighbours to FILE (.png)", metavar="FILE", old=("--figure",))
    p.add_argument("--chunk-size", type=flags.positive, default=65536,
                   help="stored vectors per chunk")
    p.add_argument("--hamming", type=flags.positive, nargs="?", const=True, default=False,
                   metavar="BITS", help="search the file's binary codes (`features --codes`) "
                                        "by Hamming distance: its longest, or those of BITS")
    flags.add_json(p)
    p.set_defaults(func=_neighbors)

    p = subparsers.add_parser(
        "retrieval", parents=[common],
        help="precision@k of nearest-neighbour retrieval: features vs pixels (Fig. 4)",
        description="Fig. 4 as a number: for each validation image, its k nearest training "
                    "images by the features (§6.1: fc7) and by the raw pixels of the same "
                    "views; the fraction that share its label. --codes adds §6.1's binary "
                    "codes: Hamming search against Euclidean, precision and queries/s.")
    p.add_argument("checkpoint", metavar="CKPT", help=ckpt_help)
    p.add_argument("--data", help="data source (default: the checkpoint's own; pretrained "
                                  "weights need one)")
    flags.add_topk(p, 6, "neighbours per query (Fig. 4: 6)", old=("-k",))
    p.add_argument("--layer", choices=("conv5", "pool5", "fc6", "fc7"), default="fc7",
                   help="the features compared (§6.1: fc7)")
    flags.add_limit(p, "validation images to query, spread over the split (default: all)")
    p.add_argument("--stored-limit", type=flags.limit_value, metavar="N|all",
                   help="training images to search, spread over the split (default: all)")
    p.add_argument("--codes", type=flags.positive, nargs="+", metavar="BITS", default=(),
                   help="binary code lengths to compare, e.g. 64 128 256")
    flags.add_batch_size(p)
    flags.add_out(p, "also draw Fig. 4 for a few queries: neighbours by the features to FILE, "
                     "by the pixels to FILE's name + -pixels", metavar="FILE", old=("--figure",))
    flags.add_json(p)
    p.set_defaults(func=_retrieval)

    p = subparsers.add_parser(
        "kernels", help="how colour-specific conv1's kernels are, per tower (Fig. 3)",
        description="Fig. 3 as a number: the chroma of each conv1 kernel (0 = grey, 0.816 = "
                    "one channel only, 1 = opponent colours), summarised per tower (§6.1: "
                    "tower 1 largely colour-agnostic, tower 2 colour-specific).")
    p.add_argument("checkpoint", metavar="CKPT", help=ckpt_help)
    flags.add_out(p, "also draw the kernels (Fig. 3) to FILE (.png)", metavar="FILE",
                  old=("--figure",))
    flags.add_json(p)
    p.set_defaults(func=_kernels)

    p = subparsers.add_parser(
        "report", parents=[common], help="HTML + Markdown reproduction report of a run",
        description="report.html (self-contained) and report.md with the config, learning "
                    "curves, errors next to the paper's, and the figures. Adds centre and "
                    "ten-view testing when the data can be loaded.")
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="run folder; or a checkpoint (" + ckpt_help + ")")
    flags.add_out(p, "output folder (default: RUN_DIR/report; for a checkpoint "
                     "./<name>-report)", metavar="DIR")
    p.add_argument("--data", help="data source (default: the run's own; pretrained weights "
                                  "need one)")
    p.add_argument("--no-eval", action="store_true", help="use only what is in the run folder")
    flags.add_limit(p, "evaluate only the first N images of the split (default: all, but "
                       "2,000 for ten views of a run trained in QUICK mode)", default="auto",
                    auto=True)
    flags.add_batch_size(p)
    flags.add_json(p)
    p.set_defaults(func=_report)

    p = subparsers.add_parser(
        "export", help="export a checkpoint's model (safetensors, ONNX, TorchScript)",
        description="Write the model in another format and check the written file gives the "
                    "PyTorch model's outputs (onnxruntime on CPU for ONNX).")
    p.add_argument("checkpoint", metavar="CKPT", help=ckpt_help)
    p.add_argument("--format", required=True, choices=("safetensors", "onnx", "torchscript"),
                   help="the file format to write")
    flags.add_out(p, "output file (default: next to the checkpoint; for `torchvision`: in the "
                     "current folder)", metavar="FILE")
    p.add_argument("--no-check", action="store_true", help="skip the output comparison")
    flags.add_json(p)
    p.set_defaults(func=_export)


def _eval(args: argparse.Namespace) -> int:
    from alexnet.api import evaluate
    from alexnet.evaluation.checkpoints_eval import format_result

    want_cm = args.confusion or bool(args.out)
    result = evaluate(args.checkpoints, args.data, views=args.views,
                      batch_size=args.batch_size, device=args.device, amp=args.amp,
                      per_class=args.per_class, confusion=want_cm)
    if args.out:
        from alexnet.figures.confusion import confusion_figure

        result["confusion_png"] = str(confusion_figure(result["confusion"], result["classes"],
                                                       args.out))
        if not args.confusion:
            result.pop("confusion")
    if args.json:
        flags.emit_json(args, result)
    else:
        print(format_result(result))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from alexnet.api import load
    from alexnet.evaluation.predict import format_predictions, predict_files

    checkpoint = args.checkpoint
    if args.weights == "torchvision":  # an alias of CKPT `torchvision`
        if checkpoint not in ("owt", "torchvision"):
            raise ConfigError("--weights torchvision works with the `owt` model only: "
                              f"alexnet predict torchvision IMAGE ... (got {checkpoint!r})")
        checkpoint = "torchvision"
    model = load(checkpoint, views=args.views, device=args.device)
    if model.note:
        print(f"note: {model.note}", file=sys.stderr)
    topk = min(args.topk, len(model.classes))
    if topk < args.topk:
        print(f"note: --topk {args.topk} capped at {topk}: the model has {topk} classes",
              file=sys.stderr)
    results = predict_files(model, args.images, topk=topk)
    if args.out:
        _predictions_png(results, args.out)
    if args.json:
        flags.emit_json(args, results)
    else:
        print(format_predictions(results))
    return 1 if any("error" in r for r in results) else 0


def _predictions_png(results: list[dict], path: str) -> None:
    import torch

    from alexnet.data.images import load_image
    from alexnet.figures.predictions import predictions_figure

    ok = [r for r in results if "predictions" in r]
    if not ok:
        return
    predictions_figure([load_image(r["file"]) for r in ok],
                       torch.tensor([[p["prob"] for p in r["predictions"]] for r in ok]),
                       [[p["name"] for p in r["predictions"]] for r in ok], path)


def _features(args: argparse.Namespace) -> int:
    from alexnet.evaluation.features import make_features

    r = make_features(args.checkpoint, args.out, data=args.data, split=args.split,
                      batch_size=args.batch_size, layer=args.layer, device=args.device,
                      codes=args.codes)
    if args.json:
        flags.emit_json(args, r)
        return 0
    print(f"{r['images']:,} feature vectors of {r['dim']} dimensions ({r['layer']}, "
          f"{r['split']} split) -> {r['path']}")
    for c in r["codes"]:
        print(f"{c['bits']}-bit codes: reconstruction error from the bits "
              f"{c['error_from_bits']:.3f} (0 = exact, 1 = the mean), {c['saturated']:.0%} of "
              f"code units saturated, {c['ones']:.0%} ones, trained in {c['seconds']:.1f} s")
    return 0


def _neighbors(args: argparse.Namespace) -> int:
    from alexnet.evaluation.feature_retrieval import find_neighbors

    r = find_neighbors(args.features, args.queries, k=args.topk, checkpoint=args.checkpoint,
                       figure=args.out, chunk_size=args.chunk_size, device=args.device,
                       hamming=args.hamming)
    if args.json:
        flags.emit_json(args, r)
        return 0
    print(f"{r['distance']} distance")
    for q in r["queries"]:
        print(f"{q['file']}:")
        for n in q["neighbors"]:
            print(f"  distance {n['distance']:10.4f}  {n['label']:<16} {n['file']}")
    if "figure" in r:
        print(f"figure -> {r['figure']}")
    return 0


def _retrieval(args: argparse.Namespace) -> int:
    from alexnet.evaluation.feature_retrieval import format_retrieval, retrieval_precision

    r = retrieval_precision(args.checkpoint, args.data, k=args.topk, layer=args.layer,
                            limit=args.limit, stored_limit=args.stored_limit, bits=args.codes,
                            batch_size=args.batch_size, device=args.device, progress=True,
                            figure=args.out)
    if args.json:
        flags.emit_json(args, r)
    else:
        print(format_retrieval(r))
    return 0


def _kernels(args: argparse.Namespace) -> int:
    from alexnet.evaluation.kernel_colour import checkpoint_kernel_colour, format_kernel_colour

    r = checkpoint_kernel_colour(args.checkpoint, figure=args.out)
    if args.json:
        flags.emit_json(args, r)
        return 0
    print(format_kernel_colour(r))
    if "figure" in r:
        print(f"figure -> {r['figure']}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from alexnet.evaluation.report import build_report

    r = build_report(args.run_dir, args.out, data=args.data, evaluate=not args.no_eval,
                     batch_size=args.batch_size, device=args.device, limit=args.limit)
    if args.json:
        flags.emit_json(args, r)
        return 0
    print(r["status"])
    print(f"\n{r['table']}\n\nreport -> {r['html']}\nmarkdown -> {r['md']}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from alexnet.weights.export import export_checkpoint

    r = export_checkpoint(args.checkpoint, args.format, args.out, check=not args.no_check)
    if args.json:
        flags.emit_json(args, r)
        return 0
    check = ("not checked" if r["max_abs_diff"] is None else
             f"outputs match PyTorch (max |difference| {r['max_abs_diff']:.3g})")
    print(f"{r['format']} -> {r['path']} ({r['bytes']:,} bytes); {check}")
    return 0
