"""`alexnet train` and `alexnet recipes`: parse and dispatch to alexnet.train."""

from __future__ import annotations

import argparse
import os

from alexnet.cli import flags
from alexnet.errors import ConfigError
from alexnet.recipes import DEFAULT_RECIPE
from alexnet.schema import parse_overrides

OVERRIDE_HELP = ("overrides of the recipe (e.g. optim.lr=0.02 epochs=3 model.lrn=false "
                 "model.image_size=112 quick=false); `alexnet recipes --keys` lists every key")
# Flags that set a config key: `--device cpu` is `device=cpu`.
KEY_FLAGS = {"device": "device", "batch_size": "batch_size"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `train` and `recipes` to the `alexnet` parser."""
    p = subparsers.add_parser(
        "train", help="train a model from a recipe",
        description="Train from a recipe. Without CUDA the default is a QUICK mode "
                    "(quick=auto); --full or quick=false runs the full recipe.")
    p.add_argument("--recipe", help="recipe name (see `alexnet recipes`) or a .yaml file "
                                    f"(default: {DEFAULT_RECIPE})")
    p.add_argument("--data", help="data source: fashion-mnist, cifar10 or a path "
                                  "(default: the recipe's)")
    flags.add_out(p, "run folder (default: runs/<recipe>-<time>)", metavar="RUN_DIR")
    flags.add_device(p, default=None, help="where to run: auto, cpu, cuda, cuda:1; the same as "
                                           "device=... (default: the recipe's, auto)")
    flags.add_batch_size(p, default=None, help="images per step, the same as batch_size=... "
                                               "(default: the recipe's)")
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
    p.add_argument("--gpus", type=flags.positive, metavar="N",
                   help="re-launch over N GPUs of this node via torchrun (N CPU processes only "
                        "with device=cpu)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (config.yaml as the run would write it) "
                        "and exit, building nothing")
    flags.add_json(p)
    flags.add_overrides(p, OVERRIDE_HELP)
    p.set_defaults(func=_train)
    r = subparsers.add_parser("recipes", help="list the shipped training recipes",
                              description="The shipped recipes, or with --keys every config "
                                          "key `alexnet train` takes as KEY=VALUE.")
    r.add_argument("--keys", action="store_true",
                   help="list every config key instead: default, what is allowed, and why")
    flags.add_json(r)
    r.set_defaults(func=_recipes)


def _train(args: argparse.Namespace) -> int:
    overrides = flags.flag_overrides(args, KEY_FLAGS)
    if args.print_config:
        from alexnet.errors import ConfigError
        from alexnet.train.run_config import dump_config
        from alexnet.train.training_run import resolve_training

        if args.resume:
            raise ConfigError("--print-config shows a new run's config; a run's own is "
                              f"{args.resume}/config.yaml")
        cfg, _ = resolve_training(recipe=args.recipe, data=args.data, full=args.full,
                                  overrides=overrides, init_from=args.init_from)
        if args.json:
            flags.emit_json(args, cfg.to_dict())
        else:
            print(dump_config(cfg), end="")
        return 0
    if args.gpus:
        return _launch(args, overrides)
    from alexnet.train.training_run import fit

    run = fit(recipe=args.recipe, data=args.data, out=args.out, resume=args.resume,
              full=args.full, force=args.force, overrides=overrides, init_from=args.init_from)
    if args.json and os.environ.get("RANK", "0") == "0":  # torchrun: one result, rank 0's
        flags.emit_json(args, run.summary)
    return 130 if run.interrupted else 0


def _launch(args: argparse.Namespace, overrides: list[str]) -> int:
    """`--gpus N`: checked here (CUDA, enough devices) before torchrun starts anything."""
    import torch

    from alexnet.train.distributed import launch
    from alexnet.train.run_folder import default_run_dir

    device = str(parse_overrides(overrides).get("device", "auto"))
    if device != "cpu" and not torch.cuda.is_available():
        raise ConfigError(f"--gpus {args.gpus}: CUDA is not available on this machine; to run "
                          f"{args.gpus} CPU processes instead add device=cpu, or drop --gpus")
    argv = [f"--{k.replace('_', '-')}={v}" for k in ("recipe", "data", "resume", "init_from")
            if (v := getattr(args, k))]
    argv += ["--force"] if args.force else []
    argv += ["--json"] if args.json else []
    if not args.resume:
        argv.append(f"--out={args.out or default_run_dir(args.recipe or DEFAULT_RECIPE)}")
    return launch(args.gpus, argv + (["--full"] if args.full else []) + overrides)


def _recipes(args: argparse.Namespace) -> int:
    from alexnet.train.training_run import key_rows, key_table, recipe_rows, recipe_table

    if args.json:
        flags.emit_json(args, key_rows() if args.keys else recipe_rows())
    else:
        print(key_table() if args.keys else recipe_table())
    return 0
