"""The first training losses of a model at §5's init and rate, and the quantity that decides
whether they explode: lr · ‖h7‖² / K (docs/paper-facts.md, "Why the paper's init diverges on
few classes").

    python benchmarks/first_steps.py --data /tmp/ti10                  # a prepared folder
    python benchmarks/first_steps.py --classes 10 1000 --synthetic     # random images, K labels
    python benchmarks/first_steps.py --data /tmp/ti10 -o init_bias=0.1 -o dropout_scaling=train

fc8's logits move along the all-ones direction of its 4096 inputs h7 with an effective rate of
lr·‖h7‖²; the cross-entropy's curvature there is about 1/K. Heavy-ball momentum 0.9 is stable
while their product stays under 2·(1 + 0.9) = 3.8.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

from alexnet.models import create_model
from alexnet.train.optim import build_optimizer
from alexnet.train.run_config import parse_value


def batches(args: argparse.Namespace, classes: int):
    """(x, y) training batches: from --data through the package's loaders, or random images."""
    if args.data:
        from alexnet.data import DataConfig, build_loaders

        data = build_loaders(DataConfig.from_dict({"source": args.data, "crop": args.size,
                                                   "lighting": 0.1, "workers": 0}),
                             batch_size=args.batch_size, device="cpu", seed=args.seed)
        return data.num_classes, data.train.iterate(0, 0)
    gen = torch.Generator().manual_seed(args.seed)

    def synthetic():
        while True:  # mean-subtracted 0..255 pixels: std ~60, as §2's inputs
            yield (torch.randn(args.batch_size, 3, args.size, args.size, generator=gen) * 60,
                   torch.randint(0, classes, (args.batch_size,), generator=gen))
    return classes, synthetic()


def run(args: argparse.Namespace, classes: int) -> dict:
    torch.manual_seed(args.seed)
    k, it = batches(args, classes)
    options = {key: parse_value(value) for key, value in (o.split("=", 1) for o in args.option)}
    model = create_model(args.model, num_classes=k, image_size=args.size, **options).train()
    opt = build_optimizer(model, {"name": "paper", "lr": args.lr, "momentum": 0.9,
                                  "weight_decay": 5e-4})
    losses, h7_sq = [], math.nan
    for step in range(args.steps):
        x, y = next(it)
        if step == 0:
            with torch.no_grad():  # fc8's input in training mode (after fc7's dropout)
                h7 = model.classifier[:-1](torch.flatten(model.features(x), 1))
                h7_sq = float(h7.pow(2).sum(1).mean())
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return {"classes": k, "h7_sq": h7_sq, "product": args.lr * h7_sq / k, "losses": losses}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="a prepared folder or image tree (else --synthetic)")
    p.add_argument("--synthetic", action="store_true", help="random images and labels")
    p.add_argument("--classes", type=int, nargs="+", default=[10], help="K for --synthetic")
    p.add_argument("--model", default="paper")
    p.add_argument("-o", "--option", action="append", default=[], help="model KEY=VALUE")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for classes in ([0] if args.data else args.classes):
        r = run(args, classes)
        print(f"K={r['classes']}  lr·‖h7‖²/K = {args.lr:g}·{r['h7_sq']:.0f}/{r['classes']} = "
              f"{r['product']:.2f} (stable below 3.8)  ln K = {math.log(r['classes']):.2f}")
        print("  losses: " + " ".join(f"{v:.2f}" for v in r["losses"]))


if __name__ == "__main__":
    main()
