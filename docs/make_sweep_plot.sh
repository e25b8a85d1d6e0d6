#!/usr/bin/env bash
# Regenerates docs/sweep.png, the figure the README embeds (analytic, instant, deterministic).
set -euo pipefail
cd "$(dirname "$0")/.."
attncli=${ATTNCLI:-.venv/bin/attncli}
"$attncli" sweep mha gqa mla -p small --seq-len 128:32768 --mode decode --plot docs/sweep.png
