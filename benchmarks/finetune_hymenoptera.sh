#!/usr/bin/env bash
# Fine-tuning vs training from scratch on hymenoptera (ants vs bees: 245 training, 153
# validation photos), the same budget for both: the finetune recipe's full run (15 epochs,
# batch 32, §5's update rule, ÷10 after 10 epochs) at 64 px.
#   - pretrained: `paper` trained on tiny-imagenet-10 (10 ImageNet classes, 5,000 photos) with
#     the paper recipe at 64 px for 10 epochs, then fine-tuned (new fc8; loaded layers at 1/10
#     of its rate) and, as a linear probe, with everything but fc8 frozen;
#   - scratch: the same model, recipe and budget from §5's init (biases 0.1, as the paper recipe).
# Usage: bash benchmarks/finetune_hymenoptera.sh [OUT] [SEEDS]   (about 25 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-runs/finetune-hymenoptera}
SEEDS=${2:-3}
DATA=${ALEXNET_TEST_DATA:?set ALEXNET_TEST_DATA to the folder holding hymenoptera and tiny-imagenet-10}
mkdir -p "$OUT"
[ -f "$OUT/ti10/meta.json" ] || alexnet prepare "$DATA/tiny-imagenet-10" "$OUT/ti10"
[ -f "$OUT/hym/meta.json" ] || alexnet prepare "$DATA/hymenoptera" "$OUT/hym"
[ -f "$OUT/pretrain/last.pt" ] || alexnet train --recipe paper --data "$OUT/ti10" \
    --out "$OUT/pretrain" epochs=10 train_batches=null
for seed in $(seq 0 $((SEEDS - 1))); do
    run() { local name=$1; shift
        [ -f "$OUT/$name-$seed/last.pt" ] || alexnet train --recipe finetune --full \
            --data "$OUT/hym" --out "$OUT/$name-$seed" "$@" seed="$seed"; }
    run finetune --init-from "$OUT/pretrain"
    run probe --init-from "$OUT/pretrain" finetune.freeze=fc7
    run scratch init_from=null finetune.lr_mult=1 model.image_size=64 model.init=paper \
        model.init_bias=0.1 model.dropout_scaling=train
done
python - "$OUT" "$SEEDS" <<'EOF'
import json, statistics, sys
from pathlib import Path
out, seeds = Path(sys.argv[1]), int(sys.argv[2])
print("| start | final val top-1 error per seed | mean |\n|---|---|---|")
for name in ("scratch", "finetune", "probe"):
    errs = []
    for seed in range(seeds):
        lines = (out / f"{name}-{seed}" / "metrics.jsonl").read_text().splitlines()
        errs.append([json.loads(l) for l in lines if '"val"' in l][-1]["top1_err"] * 100)
    print(f"| {name} | {', '.join(f'{e:.1f}%' for e in errs)} | {statistics.mean(errs):.1f}% |")
EOF
