#!/usr/bin/env bash
# Fault scenarios of `torchrun ... -m alexnet train` on one machine, on the CPU (gloo): two
# agents on 127.0.0.1, a worker SIGKILLed, a whole agent lost under --nnodes=1:2, a kill during
# a checkpoint save, a hung (SIGSTOPped) worker, a SIGTERMed worker. Prints a pass/fail table;
# exits 1 when a scenario fails. About 5 minutes on 2 CPU cores (docs/DISTRIBUTED.md).
#
#   bash benchmarks/elastic_check.sh                 # every scenario
#   bash benchmarks/elastic_check.sh --only bc       # some of them (letters: a-f)
#   bash benchmarks/elastic_check.sh --work DIR      # data, runs and torchrun logs (default
#                                                    # /tmp/alexnet-elastic-check)
# PYTHON picks the interpreter (default python3); the package is imported from src/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" benchmarks/elastic_check.py "$@"
