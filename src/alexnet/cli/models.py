"""`alexnet models` and `alexnet summary MODEL`."""

from __future__ import annotations

import argparse

from alexnet.cli import flags
from alexnet.errors import ConfigError
from alexnet.schema import parse_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `models` and `summary` to the `alexnet` parser."""
    p = subparsers.add_parser("models", help="list the AlexNet variants",
                              description="List the variants: parameters, GFLOPs per image "
                                          "at the model's size (forward, 2 x multiply-adds), "
                                          "source.")
    flags.add_json(p)
    p.set_defaults(func=cmd_models)

    p = subparsers.add_parser("summary", help="every layer of a model with its output shape",
                              description="Every layer with its output shape and parameter "
                                          "count, like the paper's Fig. 2.")
    p.add_argument("model", help="a name from `alexnet models`")
    flags.add_overrides(p, "model options, as `alexnet train` takes them: model.lrn=false "
                           "model.pool=non-overlap model.image_size=112 (`model.` may be left "
                           "out)")
    p.add_argument("--num-classes", type=int, default=1000, help="outputs of the last layer")
    p.add_argument("--in-channels", type=int, default=3, help="input channels (1: grey)")
    flags.deprecated(p, "--option", "-o", new="KEY=VALUE (e.g. model.lrn=false)",
                     dest="option", append=True, metavar="KEY=VALUE")
    flags.add_json(p)
    p.set_defaults(func=cmd_summary)


def cmd_models(args: argparse.Namespace) -> int:
    from alexnet.models import create_model, list_models, model_info
    from alexnet.models.profile import model_stats

    rows = []
    for name in list_models():
        info = model_info(name)
        model = create_model(name)
        stats = model_stats(model, model.config.get("image_size", 224))
        rows.append({"name": name, "params": stats["params"],
                     "gflops": round(stats["gflops"], 3), "source": info.source,
                     "description": info.description})
    if args.json:
        flags.emit_json(args, rows)
        return 0
    print(f"{'name':<10} {'params':>12} {'GFLOPs':>7}  source")
    for r in rows:
        print(f"{r['name']:<10} {r['params']:>12,} {r['gflops']:>7.3f}  {r['source']}")
        print(f"{'':<10} {r['description']}")
    print("\n1000 classes, 3 input channels; GFLOPs = forward, 2 x multiply-adds, per image "
          "at the model's own size (224x224 for the AlexNets; a training step costs about 3x).")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from alexnet.models import create_model
    from alexnet.models.profile import layer_table, model_stats, rows_as_dicts
    from alexnet.train.run_config import check_model_options

    given = [*getattr(args, "option", []), *args.overrides]
    options = {key.removeprefix("model."): value for key, value in parse_overrides(
        given, what="model option", example="model.lrn=false").items()}
    errors = [f"--{flag}={value}: expected a whole number >= 1"
              for flag, value in (("num-classes", args.num_classes),
                                  ("in-channels", args.in_channels)) if value < 1]
    errors = errors or check_model_options(args.model, options, num_classes=args.num_classes,
                                           in_channels=args.in_channels, prefix="model.")
    if errors:
        raise ConfigError("\n".join(errors))
    model = create_model(args.model, num_classes=args.num_classes,
                         in_channels=args.in_channels, **options)
    size = model.config.get("image_size", 224)
    rows = layer_table(model, size)
    stats = model_stats(model, size)
    if args.json:
        flags.emit_json(args, {"model": model.config,
                               "input_shape": [args.in_channels, size, size],
                               "layers": rows_as_dicts(rows), **stats})
        return 0
    print(f"{model.config['name']}: input {args.in_channels}x{size}x{size}")
    print(f"{'layer':<22} {'type':<20} {'output':>16} {'values':>10} {'params':>12}")
    for r in rows:
        shape = "x".join(map(str, r.output_shape))
        values = 1
        for d in r.output_shape:
            values *= d
        print(f"{r.name:<22} {r.kind:<20} {shape:>16} {values:>10,} {r.params:>12,}")
    print(f"total parameters {stats['params']:,}; forward {stats['gflops']:.3f} GFLOPs per image")
    return 0
