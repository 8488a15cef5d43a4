#!/usr/bin/env bash
# Set up, start the embedded Kafka and Triton, run the whole test suite, stop
# what this script started. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh

was_up=$(.venv/bin/signalml status --json | .venv/bin/python -c 'import json,sys; s=json.load(sys.stdin); print(all(s[n]["running"] for n in ("kafka", "triton")))')
if [[ "$was_up" != True ]]; then
    trap '.venv/bin/signalml down' EXIT
    .venv/bin/signalml up
fi
.venv/bin/python -m pytest "$@"
