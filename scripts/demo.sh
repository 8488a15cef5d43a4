#!/usr/bin/env bash
# The main job on the bundled data: set up, start the embedded stack, replay
# the bundled bars into Kafka. The stack stays up; `signalml down` stops it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
.venv/bin/signalml up
.venv/bin/signalml replay --bars data/sp500_daily_2015_2019.parquet --speed "${SPEED:-max}"
.venv/bin/signalml status
