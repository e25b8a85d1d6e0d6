#!/usr/bin/env bash
# The GPU check (issue 19): every CUDA path of attncli once, every row as JSON under $OUT.
#   bash benchmarks/gpu_check.sh             on a CUDA machine, in one `device` call (under 8 minutes on one H200)
#   bash benchmarks/gpu_check.sh --dry-run   the same steps on the CPU at CI-sized shapes (tests/test_gpu_check.py)
# Runs this working tree's attncli with the machine's own python (PYTHON=... to choose another);
# $OUT defaults to a new temporary folder. Exit 0 when every check holds, 1 when one fails.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$(mktemp -d)}"
py="${PYTHON:-python3}"
PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" exec timeout --kill-after=10 470 "$py" benchmarks/gpu_check.py --out "$out" "$@"
