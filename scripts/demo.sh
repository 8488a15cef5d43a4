#!/usr/bin/env bash
# The main job on the bundled data, in one command: set up (idempotent), then
# `signalml demo`: start the embedded Kafka and Triton, train a model set on the
# history, publish it, start the engine and the drift monitor, and replay the
# held-back tail through Kafka while a live view shows bars/s, latency, the
# signals, the rolling IC and drift events. Arguments go to `signalml demo`
# (--speed N, --tail-days N, --out DIR, --quick, --no-live, --stop).
# The stack stays up afterwards; `.venv/bin/signalml down` stops it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
exec .venv/bin/signalml demo "$@"
