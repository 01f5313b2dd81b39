"""`alexnet train` and `alexnet recipes`: parse and dispatch to alexnet.train."""

from __future__ import annotations

import argparse

from alexnet.recipes import DEFAULT_RECIPE

OVERRIDE_HELP = ("KEY=VALUE overrides of the recipe, dotted keys, YAML values "
                 "(e.g. optim.lr=0.02 epochs=3 model.lrn=false model.image_size=112 quick=false); "
                 "`alexnet recipes --keys` lists every key")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `train` and `recipes` to the `alexnet` parser."""
    p = subparsers.add_parser(
        "train", help="train a model from a recipe",
        description="Train from a recipe (default: fashion-mnist). Without CUDA the default "
                    "is a QUICK mode (quick=auto); --full or quick=false runs the full recipe.")
    p.add_argument("--recipe", help="recipe name (see `alexnet recipes`) or a .yaml file")
    p.add_argument("--data", help="data source: fashion-mnist, cifar10 or a path")
    p.add_argument("--out", help="run folder (default runs/<recipe>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR exactly (only epochs, log_every, device "
                        "and data.workers may be overridden)")
    p.add_argument("--force", action="store_true",
                   help="--out holds a run: move it aside (OUT.replaced-<time>) and start over")
    p.add_argument("--full", action="store_true", help="the full run, not the CPU quick mode")
    p.add_argument("--init-from", metavar="CKPT",
                   help="fine-tune: start from these weights (a checkpoint, a run folder, "
                        "`torchvision`, or a torchvision .pth); the model follows them, fc8 is "
                        "replaced for the data's classes (init_from=…; see finetune.*)")
    p.add_argument("--gpus", type=int, help="re-launch over N GPUs of this node via torchrun")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (config.yaml as the run would write it) "
                        "and exit, building nothing")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDE_HELP)
    p.set_defaults(func=_train)
    r = subparsers.add_parser("recipes", help="list the shipped training recipes")
    r.add_argument("--keys", action="store_true",
                   help="list every config key instead: default, what is allowed, and why")
    r.set_defaults(func=_recipes)


def _train(args: argparse.Namespace) -> int:
    if args.print_config:
        from alexnet.errors import ConfigError
        from alexnet.train.config import dump_config
        from alexnet.train.runner import resolve_training

        if args.resume:
            raise ConfigError("--print-config shows a new run's config; a run's own is "
                              f"{args.resume}/config.yaml")
        cfg, _ = resolve_training(recipe=args.recipe, data=args.data, full=args.full,
                                  overrides=args.overrides, init_from=args.init_from)
        print(dump_config(cfg), end="")
        return 0
    if args.gpus:
        from alexnet.train.distributed import launch
        from alexnet.train.run_folder import default_run_dir

        argv = [f"--{k.replace('_', '-')}={v}" for k in ("recipe", "data", "resume", "init_from")
                if (v := getattr(args, k))]
        argv += ["--force"] if args.force else []
        if not args.resume:
            argv.append(f"--out={args.out or default_run_dir(args.recipe or DEFAULT_RECIPE)}")
        return launch(args.gpus, argv + (["--full"] if args.full else []) + args.overrides)
    from alexnet.train.runner import fit

    run = fit(recipe=args.recipe, data=args.data, out=args.out, resume=args.resume,
              full=args.full, force=args.force, overrides=args.overrides,
              init_from=args.init_from)
    return 130 if run.interrupted else 0


def _recipes(args: argparse.Namespace) -> int:
    from alexnet.train.runner import key_table, recipe_table

    print(key_table() if args.keys else recipe_table())
    return 0
