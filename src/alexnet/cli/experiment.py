"""`alexnet experiment list|run|report`: parse and dispatch to alexnet.experiments."""

from __future__ import annotations

import argparse

from alexnet.cli import flags

OVERRIDE_HELP = ("for every arm: the keys of `alexnet train` (`alexnet recipes --keys`), "
                 "e.g. epochs=3 data.workers=0; the keys the experiment sets per arm, "
                 "data.source (--data) and quick (--full) are refused")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `experiment` (list, run, report) to the `alexnet` parser."""
    p = subparsers.add_parser(
        "experiment", help="the paper's experiments, one command each",
        description="The paper's experiments (§3.1 ReLU vs tanh, §3.3 LRN on CIFAR-10, §4.1 "
                    "ten views, §6 ensembles): train their arms as ordinary runs, measure, "
                    "and judge the result against the paper's number.")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    ls = sub.add_parser("list", help="the experiments: claim, data, QUICK and full cost")
    flags.add_json(ls)
    ls.set_defaults(func=_list)
    run = sub.add_parser(
        "run", help="run an experiment (again: continue its unfinished arms)",
        description="Train the experiment's arms (skipping finished ones, continuing "
                    "unfinished ones), then write OUT/results.json, results.md and figure.png. "
                    "Without CUDA the default is the QUICK version; --full runs the paper's "
                    "settings.")
    run.add_argument("name", help="an experiment of `alexnet experiment list`, or `all`: every "
                                  "experiment in turn and one summary table (OUT/summary.md, "
                                  "summary.json; default OUT runs/experiments/all[-quick])")
    run.add_argument("--data", help="data source of every arm: cifar10, fashion-mnist or a path "
                                    "(default: the experiment's; with `all`: of the "
                                    "experiments without a default)")
    run.add_argument("--cifar-data", metavar="DIR",
                     help="with `all`: the CIFAR-10 experiments' data (default: cifar10)")
    run.add_argument("--only", action="append", metavar="NAME", default=[],
                     help="with `all`: only these experiments (repeatable)")
    run.add_argument("--seeds", type=flags.positive,
                     help="independently seeded runs per condition (default: the "
                          "experiment's, see `alexnet experiment list`)")
    flags.add_out(run, "experiment folder (default: runs/experiments/NAME[-quick])",
                  metavar="DIR")
    flags.add_device(run, default=None, help="where every arm runs: auto, cpu, cuda, cuda:1; "
                                             "the same as device=... (default: auto)")
    run.add_argument("--full", action="store_true", help="the full version, not QUICK")
    run.add_argument("--from", dest="source", metavar="DIR",
                     help="views, ensemble, kernels, retrieval: evaluate these trained runs (a "
                          "run folder or an experiment folder) instead of training new ones")
    run.add_argument("--reuse", action="append", metavar="DIR", default=[],
                     help="another experiment folder: its finished arms with the same name and "
                          "config are copied, not trained again (repeatable; e.g. the paper "
                          "net's runs of `lrn` for `overlap`)")
    flags.add_json(run)
    flags.add_overrides(run, OVERRIDE_HELP)
    run.set_defaults(func=_run)
    rep = sub.add_parser("report", help="analyse a finished experiment folder again",
                         description="Re-measure the finished arms of DIR and rewrite its "
                                     "results.json, results.md and figure.png.")
    rep.add_argument("folder", metavar="DIR", help="a folder `alexnet experiment run` wrote")
    flags.add_json(rep)
    rep.set_defaults(func=_report)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _list(args: argparse.Namespace) -> int:
    from alexnet.experiments.runner import experiment_table

    rows = experiment_table()
    if args.json:
        flags.emit_json(args, rows)
        return 0
    for r in rows:
        print(f"{r['name']:<13} {r['section']:<13} {r['claim']}")
        print(f"{'':<13} paper: {r['paper']}")
        print(f"{'':<13} data: {r['default_data']}; seeds {r['seeds']['quick']} (QUICK), "
              f"{r['seeds']['full']} (full)")
        print(f"{'':<13} QUICK: {r['cost']['quick']}; full: {r['cost']['full']}")
        if r["power"]:
            print(f"{'':<13} {r['power']}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from alexnet.errors import ConfigError
    from alexnet.experiments.runner import run_experiment

    if args.name == "all":
        from alexnet.experiments.suite import run_all

        if args.source or args.reuse:
            raise ConfigError("`run all` reuses its own experiments' arms; drop --from/--reuse")
        summary = run_all(data=args.data, cifar_data=args.cifar_data, seeds=args.seeds,
                          out=args.out, full=args.full, overrides=args.overrides,
                          only=args.only or None)
        return 130 if any(r["verdict"] == "stopped" for r in summary["rows"]) else 0
    if args.cifar_data or args.only:
        raise ConfigError("--cifar-data and --only go with `run all`")

    results = run_experiment(args.name, data=args.data, seeds=args.seeds, out=args.out,
                             full=args.full, overrides=flags.flag_overrides(
                                 args, {"device": "device"}),
                             source=args.source, reuse=args.reuse)
    if results is None:
        return 130
    if args.json:
        flags.emit_json(args, results)
    return 0


def _report(args: argparse.Namespace) -> int:
    from alexnet.experiments.runner import report_experiment

    results = report_experiment(args.folder)
    if args.json:
        flags.emit_json(args, results)
    return 0
