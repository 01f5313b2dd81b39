"""`alexnet bench train|lrn|data`: parse and dispatch to alexnet.bench and
alexnet.data.loader_speed."""

from __future__ import annotations

import argparse

from alexnet.cli import flags


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `bench` (train, lrn, data) to the `alexnet` parser."""
    bench = subparsers.add_parser("bench", help="throughput benchmarks (training step, LRN, data)",
                                  description="Throughput on synthetic data, next to the plain "
                                              "PyTorch a user would write.")
    sub = bench.add_subparsers(dest="bench_command", metavar="BENCH")
    bench.set_defaults(func=lambda args: bench.print_help() or 2)

    t = sub.add_parser("train", help="images/s of the training step, optimised vs plain",
                       description="Images/s of forward+backward+update on synthetic data: the "
                                   "optimised step (CUDA: bf16, channels_last, compile, PaperSGD, "
                                   "fused LRN; CPU: bf16 where native, channels_last, compile) "
                                   "and the plain eager fp32 step, side by side (on a CPU the "
                                   "plain step runs in a process of its own, as a user's "
                                   "script would).")
    t.add_argument("--model", default="paper", help="a name from `alexnet models`")
    flags.add_batch_size(t)
    t.add_argument("--steps", type=int, default=50, help="timed steps per configuration")
    t.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    t.add_argument("--image-size", type=int, default=224, help="e.g. 64 for a quick CPU run")
    t.add_argument("--num-classes", type=int, default=1000, help="outputs of the last layer")
    t.add_argument("--in-channels", type=int, default=3, choices=[1, 3],
                   help="1: grey images, as the default recipe (Fashion-MNIST)")
    t.add_argument("--rounds", type=int, default=5,
                   help="CPU: alternating timed rounds of the two steps (default 5); the "
                        "plain one runs in a process of its own")
    flags.add_device(t)
    t.add_argument("--compile-mode", default="default",
                   choices=["default", "reduce-overhead", "max-autotune",
                            "max-autotune-no-cudagraphs"],
                   help="torch.compile mode; reduce-overhead adds CUDA graphs")
    for flag, what in (("amp", "bf16 autocast"), ("channels-last", "channels_last"),
                       ("compile", "torch.compile")):
        t.add_argument(f"--{flag}", dest=flag.replace("-", "_"), default=None,
                       action=argparse.BooleanOptionalAction,
                       help=f"{what} in the optimised step (default: what the device does "
                            "best; see alexnet.accel)")
    t.add_argument("--no-fused-lrn", dest="fused_lrn", action="store_false",
                   help="keep the plain PyTorch LRN in the optimised step")
    t.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="time only the optimised step")
    flags.add_json(t)
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("lrn", help="LRN forward+backward vs a ReLU on the same tensor",
                       description="Forward+backward time of the fused LRN, the plain PyTorch "
                                   "LRNs and a ReLU on one tensor (default conv1's output at "
                                   "batch 128: 128x96x55x55).")
    r.add_argument("--shape", type=int, nargs=4, default=[128, 96, 55, 55],
                   metavar=("B", "C", "H", "W"), help="the tensor's shape")
    r.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="the tensor's dtype")
    r.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    flags.add_device(r)
    r.add_argument("--iters", type=int, help="timed calls (default 50 on CUDA, 3 on CPU)")
    r.add_argument("--warmup", type=int, help="untimed calls first (default 10 / 1)")
    r.add_argument("--alpha-convention", choices=["alpha/n", "alpha"], default="alpha/n",
                   help="alpha/n: the released code and torch; alpha: the paper's formula")
    r.add_argument("--compile-reference", action="store_true",
                   help="also time the plain LRN under torch.compile")
    flags.add_json(r)
    r.set_defaults(func=cmd_lrn)

    d = sub.add_parser("data", help="batches/s of the data loader",
                       description="Throughput of the training loader on SOURCE "
                                   "(alexnet.data.loader_speed.bench_loader).")
    d.add_argument("source", help="fashion-mnist, cifar10 or a path")
    flags.add_batch_size(d)
    d.add_argument("--batches", type=int, default=50, help="batches timed")
    flags.add_device(d)
    flags.add_json(d)
    d.set_defaults(func=cmd_data)


def cmd_train(args: argparse.Namespace) -> int:
    from alexnet.bench.train_speed import TrainBenchConfig, format_train_bench, run_train_bench

    cfg = TrainBenchConfig(model=args.model, batch_size=args.batch_size, steps=args.steps,
                           warmup=args.warmup, image_size=args.image_size,
                           num_classes=args.num_classes, in_channels=args.in_channels,
                           rounds=args.rounds, device=args.device, amp=args.amp,
                           channels_last=args.channels_last, compile=args.compile,
                           compile_mode=args.compile_mode, fused_lrn=args.fused_lrn,
                           baseline=args.baseline, progress=not args.json)
    result = run_train_bench(cfg)
    if args.json:
        flags.emit_json(args, result)
    else:
        print(format_train_bench(result))
    return 0


def cmd_lrn(args: argparse.Namespace) -> int:
    from alexnet.bench.lrn_speed import LRNBenchConfig, format_lrn_bench, run_lrn_bench

    cfg = LRNBenchConfig(shape=tuple(args.shape), dtype=args.dtype,
                         channels_last=args.channels_last, device=args.device, iters=args.iters,
                         warmup=args.warmup, alpha_over_n=args.alpha_convention == "alpha/n",
                         compile_reference=args.compile_reference, progress=not args.json)
    result = run_lrn_bench(cfg)
    if args.json:
        flags.emit_json(args, result)
    else:
        print(format_lrn_bench(result))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from alexnet.data.loader_speed import bench_loader
    from alexnet.devices import resolve_device

    result = bench_loader(args.source, batch_size=args.batch_size,
                          device=resolve_device(args.device), num_batches=args.batches)
    if args.json:
        flags.emit_json(args, result)
    else:
        for key, value in result.items():
            print(f"{key:<24} {value:.4g}" if isinstance(value, float) else f"{key:<24} {value}")
    return 0
