#!/usr/bin/env bash
# The main command of README.md: set up (venv, packages, Fashion-MNIST), train the default
# recipe (fashion-mnist; a QUICK mode of 9-11 minutes on 2 CPU cores when there is no CUDA
# GPU), then show the result: the accuracy and a report (HTML + Markdown) with the error table,
# learning curves, conv1 kernels and top-5 predictions on test images. Extra arguments go to
# `alexnet train` (e.g. --full, or epochs=3).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
RUN="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
alexnet train --out "$RUN" "$@"
echo
alexnet report "$RUN"
echo "open $RUN/report/report.html in a browser, or read $RUN/report/report.md"
