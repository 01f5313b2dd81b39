#!/usr/bin/env bash
# The test command of README.md: bootstrap, lint, then the default (non-slow) test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
cd "$ROOT"
# The real photo sets the tests use (tests/conftest.py): the project's shared data beside the
# repository unless ALEXNET_TEST_DATA says otherwise; tests that need them skip when absent.
export ALEXNET_TEST_DATA="${ALEXNET_TEST_DATA:-$(cd "$ROOT/.." && pwd)/shared/data}"
ruff check src tests $([ -d benchmarks ] && echo benchmarks)
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
python -m pytest -q "$@"
