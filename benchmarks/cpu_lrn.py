"""CPU forward+backward time of the LRN (§3.3): `lrn_reference` (shifted-slice window sum,
hand-written backward) against `lrn_avg_pool` (the earlier avg_pool3d formula, autograd).

    PYTHONPATH=src python benchmarks/cpu_lrn.py [--threads 2] [--rounds 7] [--compile]
        [--shape B C H W ...]

The two alternate in one process (the order rotating each round) and each round's time is
the mean of enough iterations to take ~0.1 s; the table gives the medians over the rounds and
old/new, the ratio of the medians (range: the rounds' own ratios), so that a machine shared
with other work still gives a usable ratio. Inputs: ReLU outputs (half zeros, like conv1's),
fp32 NCHW and bf16 channels_last (what the CPU training step feeds the LRN under bf16
autocast). `--compile`: also both under torch.compile (fwd+bwd, compile time excluded).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from alexnet.models.local_response_norm import lrn_avg_pool, lrn_reference

SHAPES = [(32, 96, 15, 15), (32, 256, 7, 7), (128, 96, 55, 55)]  # QUICK 64 px conv1/conv2; 224 px
CASES = [(torch.float32, False), (torch.bfloat16, True)]


def _time(step: Callable[[], None], iters: int) -> float:
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    return (time.perf_counter() - t0) / iters


def bench_case(shape: tuple[int, ...], dtype: torch.dtype, channels_last: bool, rounds: int,
               compile: bool) -> None:
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = (torch.randn(shape) * 20).relu().to(dtype).contiguous(memory_format=fmt)
    g = torch.randn(shape).to(dtype).contiguous(memory_format=fmt)
    x.requires_grad_(True)
    impls = {"old": lrn_avg_pool, "new": lrn_reference}
    if compile:
        impls["old compiled"] = torch.compile(lrn_avg_pool)
        impls["new compiled"] = torch.compile(lrn_reference)

    def step_of(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def step() -> None:
            x.grad = None
            f(x).backward(g)
        return step

    steps = {name: step_of(f) for name, f in impls.items()}
    outs = {}
    for name, step in steps.items():  # warm-up (and compile); keep the results to compare
        step()
        outs[name] = (impls[name](x).detach().float(), x.grad.float())
    warm = _time(steps["old"], 1)
    iters = max(1, round(0.1 / max(warm, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(_time(steps[name], iters))
    y0, dx0 = outs["old"]
    label = f"{'x'.join(map(str, shape))} {str(dtype).removeprefix('torch.')} " \
            f"{'channels_last' if channels_last else 'NCHW'}"
    for name in names:
        med = statistics.median(times[name])
        ratios = [o / n for o, n in zip(times["old"], times[name], strict=True)]
        y, dx = outs[name]
        dy = ((y - y0).abs().max() / y0.abs().max()).item()
        ddx = ((dx - dx0).abs().max() / dx0.abs().max()).item()
        print(f"{label:32s} {name:13s} {med * 1e3:9.2f} ms   old/this "
              f"{statistics.median(times['old']) / med:5.2f}x "
              f"(rounds {min(ratios):.2f}-{max(ratios):.2f})   max rel diff y {dy:.1e} "
              f"dx {ddx:.1e}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--compile", action="store_true", help="also time both under torch.compile")
    ap.add_argument("--shape", type=int, nargs=4, action="append", metavar=("B", "C", "H", "W"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds; "
          "forward+backward per call")
    for shape in args.shape or SHAPES:
        for dtype, channels_last in CASES:
            bench_case(tuple(shape), dtype, channels_last, args.rounds, args.compile)


if __name__ == "__main__":
    main()
