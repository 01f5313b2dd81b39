#!/usr/bin/env bash
# The test command of README.md: bootstrap, lint, then the default (non-slow) test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
ruff check src tests $([ -d benchmarks ] && echo benchmarks)
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
python -m pytest -q "$@"
