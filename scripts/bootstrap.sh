#!/usr/bin/env bash
# Sourced by quickstart.sh and test.sh: makes .venv with torch and this package, and the
# Fashion-MNIST Debian package where apt is available. Idempotent; fast when already done.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ALEXNET_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[bootstrap] creating $VENV"
    "$PY" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, torchvision" >/dev/null 2>&1; then
    echo "[bootstrap] installing torch and torchvision (a few minutes, once)"
    # These versions lie on the project machines' disk; elsewhere pip downloads them.
    "$VENV/bin/pip" install -q "torch==2.14.1" "torchvision==0.29.1" \
        || "$VENV/bin/pip" install -q "torch>=2.4" "torchvision>=0.19"
fi
stamp="$VENV/.alexnet-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "[bootstrap] installing alexnet (editable), dev tools, export, hub and explore extras"
    "$VENV/bin/pip" install -q -e "$ROOT[dev,export,hub,explore]"
    touch "$stamp"
fi
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
    echo "[bootstrap] installing Debian's dataset-fashion-mnist"
    (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 \
             && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }) \
        || echo "[bootstrap] could not install dataset-fashion-mnist; torchvision will download it"
fi
# Chromium for the explorer's browser test (tests/test_explore_browser.py skips without it;
# Playwright's own browser download needs the internet).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ]; then
    echo "[bootstrap] installing Debian's chromium"
    (apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 \
             && apt-get install -y -qq chromium >/dev/null 2>&1; }) \
        || echo "[bootstrap] could not install chromium; the browser test will be skipped"
fi
export PATH="$VENV/bin:$PATH"
