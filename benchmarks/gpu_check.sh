#!/usr/bin/env bash
# Every measurement that needs a CUDA GPU, in one command that ends within ~8 minutes on one
# H100: versions, `pytest -m gpu`, `bench lrn` (fp32, bf16), `bench train` of `paper` at batch
# 128 and 256 with the plain baseline, `alexnet prepare` + `bench data` on real photographs,
# a short 224-px run of the `paper` recipe on them (does §5's recipe learn?), and the full
# `fashion-mnist` recipe (10 epochs at 224; Dive into Deep Learning's run reaches 88.5%).
#
#   bash benchmarks/stage_gpu_data.sh     # once, on a machine with the data: fills .gpu-data/
#   bash benchmarks/gpu_check.sh          # on the GPU machine (carry .gpu-data along)
#   GPU_CHECK_DRY=1 bash benchmarks/gpu_check.sh   # every part shrunk: checks the plumbing on CPU
#   GPU_CHECK_ONLY="prepare data tiny224" bash benchmarks/gpu_check.sh   # only the parts whose
#                                         names start with one of these words (a rerun of some)
#
# Writes $OUT/gpu_check.log, $OUT/gpu_check.json and $OUT/gpu_check/ (each part's output); $OUT
# defaults to benchmarks/results/. Each part runs under its own `timeout` and inside one overall
# budget (GPU_CHECK_BUDGET seconds, default 520), so a slow part costs only its own result.
# PYTHON picks the interpreter (default python3); the package is imported from src/.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DRY="${GPU_CHECK_DRY:-0}"
OUT_DIR="${OUT:-$ROOT/benchmarks/results}"
PARTS="$OUT_DIR/gpu_check"
LOG="$OUT_DIR/gpu_check.log"
DATA="${GPU_CHECK_DATA:-$ROOT/.gpu-data}"
WORK="${GPU_CHECK_WORK:-/tmp/gpu_check}"
PY="${PYTHON:-$(command -v python3 || command -v python)}"
BUDGET="${GPU_CHECK_BUDGET:-520}"
ONLY="${GPU_CHECK_ONLY:-}"
START=$(date +%s)
DEADLINE=$((START + BUDGET))
rm -rf "$PARTS" "$WORK"
mkdir -p "$PARTS" "$WORK"
: > "$LOG"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export TQDM_MININTERVAL=10 PYTHONUNBUFFERED=1
ORDER=()

log() { echo "$*" | tee -a "$LOG"; }

# Pure-Python packages the machine lacks come from .gpu-data/pylib (stage_gpu_data.sh).
missing=()
for mod in yaml tqdm pytest; do
    "$PY" -c "import $mod" >/dev/null 2>&1 || missing+=("$mod")
done
if [ "${#missing[@]}" -gt 0 ] && [ -d "$DATA/pylib" ]; then
    mkdir -p "$WORK/pylib"
    for mod in "${missing[@]}"; do
        deps=("$mod")
        [ "$mod" = pytest ] && deps=(pytest _pytest pluggy iniconfig packaging py.py)
        for dep in "${deps[@]}"; do
            if [ -e "$DATA/pylib/$dep" ] && ! "$PY" -c "import ${dep%.py}" >/dev/null 2>&1; then
                ln -sfn "$DATA/pylib/$dep" "$WORK/pylib/$dep"
            fi
        done
    done
    export PYTHONPATH="$PYTHONPATH:$WORK/pylib"
    log "using .gpu-data/pylib for: ${missing[*]}"
fi

# part NAME LIMIT_S RESERVE_S CMD...: run CMD under `timeout`, at most LIMIT_S and never into
# the RESERVE_S seconds kept for the parts after it; stdout -> NAME.out, stderr -> NAME.err.
part() {
    local name=$1 limit=$2 reserve=$3
    shift 3
    if [ -n "$ONLY" ]; then
        local word wanted=0
        for word in $ONLY; do [[ "$name" == "$word"* ]] && wanted=1; done
        ((wanted)) || return 0
    fi
    ORDER+=("$name")
    local left=$((DEADLINE - $(date +%s) - reserve))
    ((limit > left)) && limit=$left
    if ((limit < 10)); then
        log "=== $name: skipped, the overall budget of ${BUDGET}s is spent"
        echo "{\"skipped\": \"budget spent\", \"limit_s\": $limit}" > "$PARTS/$name.status"
        return
    fi
    local cmd="$*"
    log "=== $name (limit ${limit}s, $(( $(date +%s) - START ))s into the check): ${cmd:0:240}"
    local t0 t1 rc
    t0=$(date +%s.%N)
    timeout --kill-after=15 "$limit" "$@" > "$PARTS/$name.out" 2> "$PARTS/$name.err"
    rc=$?
    t1=$(date +%s.%N)
    tr '\r' '\n' < "$PARTS/$name.out" | grep -v '^\s*$' | tail -n 60 >> "$LOG"
    tr '\r' '\n' < "$PARTS/$name.err" | grep -v '^\s*$' | grep -v 'it/s\]$\|batch/s' \
        | tail -n 40 >> "$LOG"
    local secs
    secs=$(awk "BEGIN {printf \"%.1f\", $t1 - $t0}")
    log "--- $name: exit $rc after ${secs}s$( ((rc == 124 || rc == 137)) && echo ' (TIMED OUT)')"
    "$PY" -c 'import json, sys; print(json.dumps({"rc": int(sys.argv[1]),
        "seconds": float(sys.argv[2]), "limit_s": int(sys.argv[3]), "command": sys.argv[4:]}))' \
        "$rc" "$secs" "$limit" "$@" > "$PARTS/$name.status"
}

A=("$PY" -m alexnet)
if [ "$DRY" = 1 ]; then  # every part shrunk so that the whole check runs on a laptop CPU
    LRN=(--shape 4 96 27 27 --iters 2 --warmup 1)
    TRAIN=(--image-size 64 --steps 2 --warmup 1 --no-compile)
    B128=8 B256=16 DATA_BATCH=32 DATA_BATCHES=3
    PAPER_SET=(model.image_size=64 data.crop=64 batch_size=16 train_batches=3 log_every=1)
    FASHION_SET=(model.image_size=64 data.resize=64 batch_size=32 train_batches=3 log_every=1)
    PAPER_EPOCHS=2 FASHION_EPOCHS=2
else
    LRN=()
    TRAIN=()
    B128=128 B256=256 DATA_BATCH=256 DATA_BATCHES=50
    PAPER_SET=()
    FASHION_SET=()
    PAPER_EPOCHS="${GPU_CHECK_PAPER_EPOCHS:-8}" FASHION_EPOCHS=10
fi

# --- the machine
nvidia-smi 2>&1 | tee -a "$LOG" || log "nvidia-smi: not available"
part env 30 400 "$PY" -c '
import json, os, platform, torch, torchvision
try:
    import triton; tv = triton.__version__
except ImportError:
    tv = None
cuda = torch.cuda.is_available()
print(json.dumps({"python": platform.python_version(), "torch": torch.__version__,
    "torchvision": torchvision.__version__, "triton": tv, "cuda": torch.version.cuda,
    "device": torch.cuda.get_device_name() if cuda else "cpu", "cpus": os.cpu_count(),
    "cpu_capability": torch.backends.cpu.get_cpu_capability()}))'

# --- tests and kernel / step benchmarks (reserve: the two training runs after them)
part pytest-gpu 75 380 "$PY" -m pytest -m gpu -q -p no:cacheprovider tests
part lrn-fp32 30 370 "${A[@]}" bench lrn --json "${LRN[@]}"
part lrn-bf16 30 360 "${A[@]}" bench lrn --dtype bfloat16 --channels-last --json "${LRN[@]}"
part train-b128 100 340 "${A[@]}" bench train --model paper --batch-size "$B128" --json "${TRAIN[@]}"
part train-b256 80 330 "${A[@]}" bench train --model paper --batch-size "$B256" --json "${TRAIN[@]}"

# --- real photographs: prepare (§2: 256x256, packed), then the loader on them
TIN="$DATA/tiny-imagenet-10"
if [ "$DRY" = 1 ]; then  # a few images per class
    mkdir -p "$WORK/tin-small"
    for split in train val; do
        for d in "$TIN/$split"/*/; do
            mkdir -p "$WORK/tin-small/$split/$(basename "$d")"
            ls "$d" | head -n "$([ $split = train ] && echo 40 || echo 4)" \
                | while read -r f; do ln -s "$d$f" "$WORK/tin-small/$split/$(basename "$d")/$f"; done
        done
    done
    TIN="$WORK/tin-small"
fi
PREP="$WORK/tiny-imagenet-10-256"
part prepare 60 320 "${A[@]}" prepare "$TIN" "$PREP"
part data-gpu 30 310 "${A[@]}" bench data "$PREP" --batch-size "$DATA_BATCH" \
    --batches "$DATA_BATCHES" --json
part data-cpu 30 300 "${A[@]}" bench data "$PREP" --batch-size "$DATA_BATCH" \
    --batches "$DATA_BATCHES" --device cpu --json

# --- the full fashion-mnist recipe (224 px, batch 128), as many of its 10 epochs as fit
read -r -a fit <<< "$("$PY" benchmarks/gpu_check_report.py epochs "$PARTS" \
    "$(( DEADLINE - $(date +%s) - 180 ))" "$FASHION_EPOCHS" 60000 10000)"
FE=${fit[0]:-$FASHION_EPOCHS}
if [ "$FE" -lt "$FASHION_EPOCHS" ]; then
    echo "capped at $FE of $FASHION_EPOCHS epochs: at the measured step rate (${fit[1]}" \
        "images/s, bench train at batch $B128) $FASHION_EPOCHS do not fit in the time left" \
        > "$PARTS/fashion-full.note"
    log "fashion-full: $(cat "$PARTS/fashion-full.note")"
fi
echo "$WORK/runs/fashion-full" > "$PARTS/fashion-full.run"
part fashion-full 240 180 "${A[@]}" train --full --out "$WORK/runs/fashion-full" \
    data.root="$DATA" epochs="$FE" "${FASHION_SET[@]}"

# --- the paper's and the released code's recipes at 224 on the prepared photographs, each as
# shipped and exactly as written (`-exact`): per-epoch validation error (chance: 90%). Eager
# (compile=false): for runs this short, compiling would cost more than it saves.
reserve=135
for recipe in paper original paper-exact original-exact; do
    echo "$WORK/runs/tiny224-$recipe" > "$PARTS/tiny224-$recipe.run"
    part "tiny224-$recipe" 45 "$reserve" "${A[@]}" train --recipe "$recipe" --data "$PREP" --full \
        --out "$WORK/runs/tiny224-$recipe" epochs="$PAPER_EPOCHS" compile=false log_every=10 \
        "${PAPER_SET[@]}"
    reserve=$((reserve - 45))
done

# --- one JSON and the summary table, last
printf '%s\n' "${ORDER[@]}" | "$PY" -c 'import json, sys
print(json.dumps([l.strip() for l in sys.stdin if l.strip()]))' > "$PARTS/order.json"
"$PY" -c 'import json, sys; print(json.dumps({"dry_run": sys.argv[1] == "1",
    "budget_s": int(sys.argv[2]), "total_s": int(sys.argv[3])}))' \
    "$DRY" "$BUDGET" "$(( $(date +%s) - START ))" > "$PARTS/meta.json"
log ""
log "gpu_check summary ($(( $(date +%s) - START ))s; JSON: $OUT_DIR/gpu_check.json)"
"$PY" benchmarks/gpu_check_report.py summary "$PARTS" "$OUT_DIR/gpu_check.json" | tee -a "$LOG"
