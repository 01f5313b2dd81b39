#!/usr/bin/env bash
# Fill .gpu-data/ (git-ignored) with what benchmarks/gpu_check.sh reads on a lent GPU machine,
# which has no network: name `.gpu-data` in the run's `carry` and it travels with the repo.
#   .gpu-data/tiny-imagenet-10/  raw train/val wnid folders of 64x64 JPEGs ($ALEXNET_TEST_DATA)
#   .gpu-data/fashion-mnist/     the four idx .gz files (Debian's dataset-fashion-mnist, or
#                                torchvision's download under data-cache/)
#   .gpu-data/pylib/             pure-Python fallbacks (tqdm, yaml, pytest and its deps) that
#                                gpu_check.sh puts on PYTHONPATH only where the machine lacks them
# Usage: bash benchmarks/stage_gpu_data.sh [DEST]   (PYTHON=... picks the interpreter to copy
# the pure-Python packages from; default: .venv/bin/python, else python3)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$ROOT/.gpu-data}"
TIN="${TINY_IMAGENET_10:-${ALEXNET_TEST_DATA:?set ALEXNET_TEST_DATA to the folder holding tiny-imagenet-10}/tiny-imagenet-10}"
PY="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || echo python3)}"

fm_src=""
for d in "${FASHION_MNIST:-}" /usr/share/datasets/fashion-mnist "$ROOT/data-cache/FashionMNIST/raw"; do
    if [ -n "$d" ] && [ -f "$d/train-images-idx3-ubyte.gz" ]; then fm_src="$d"; break; fi
done
[ -d "$TIN/train" ] || { echo "error: no tiny-imagenet-10 at $TIN (set TINY_IMAGENET_10)" >&2; exit 2; }
[ -n "$fm_src" ] || { echo "error: Fashion-MNIST .gz files not found (apt-get install" \
    "dataset-fashion-mnist, or set FASHION_MNIST=DIR)" >&2; exit 2; }

mkdir -p "$DEST/fashion-mnist" "$DEST/pylib"
rsync -a --delete "$TIN/" "$DEST/tiny-imagenet-10/" 2>/dev/null \
    || { rm -rf "$DEST/tiny-imagenet-10"; cp -r "$TIN" "$DEST/tiny-imagenet-10"; }
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
         t10k-labels-idx1-ubyte; do
    cp -p "$fm_src/$f.gz" "$DEST/fashion-mnist/$f.gz"
done

# Pure-Python packages only (compiled extensions are left behind: yaml falls back to its pure
# loader); the GPU machine's own packages win wherever it has them.
"$PY" - "$DEST/pylib" <<'PYEOF'
import importlib, shutil, sys
from pathlib import Path

dest = Path(sys.argv[1])
for name in ("tqdm", "yaml", "pytest", "_pytest", "pluggy", "iniconfig", "packaging", "py"):
    try:
        mod = importlib.import_module(name)
    except ImportError:
        print(f"stage: {name} is not installed in {sys.executable}; not staged")
        continue
    src = Path(mod.__file__)
    target = dest / (src.parent.name if src.name == "__init__.py" else src.name)
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    if src.name == "__init__.py":
        shutil.copytree(src.parent, target,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
    else:
        shutil.copy2(src, target)
PYEOF
du -sh "$DEST"/* | sed 's/^/stage: /'
echo "stage: $(du -sh "$DEST" | cut -f1) in $DEST (carry it as .gpu-data; the limit is 64 MiB)"
