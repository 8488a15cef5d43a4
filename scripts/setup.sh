#!/usr/bin/env bash
# Set up everything SignalML needs on a fresh machine, idempotently:
#   1. the project environment .venv/ (the package, editable, with test extras);
#   2. the Triton server's own environment .venv-triton/ (numpy < 2);
#   3. the Kafka broker's jars, resolved by Maven from kafka/pom.xml (cached).
#   4. headless Chromium (Debian's chromium package) for the training report's
#      browser test, when /usr/bin/chromium is missing.
# Needs: python3 (3.11+), Java 17+, Maven; network to PyPI and Maven Central
# on the first run only (and to Debian's mirror, with root or sudo, for Chromium).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf 'setup: %s\n' "$*" >&2; }

PY="${SIGNALML_PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { say "error: Python 3.11+ required ($PY is $("$PY" --version))"; exit 1; }
command -v java >/dev/null || { say "error: Java 17+ is required for the embedded Kafka"; exit 1; }
command -v mvn >/dev/null || { say "error: Maven is required to resolve the Kafka jars"; exit 1; }

STAMP=.venv/.signalml-setup
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ -x .venv/bin/python && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    say ".venv is up to date"
else
    say "creating .venv (project, test extras)"
    [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[test]'
    echo "$WANT" > "$STAMP"
fi

if [[ -x /usr/bin/chromium ]]; then
    say "chromium is installed"
else
    say "installing chromium (Debian package) for the report's browser test"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    if ! { $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } >&2 \
        || [[ ! -x /usr/bin/chromium ]]; then
        say "error: could not install Chromium: run 'apt-get install chromium' as root (Debian's package mirror must be reachable), then rerun scripts/setup.sh"
        exit 1
    fi
fi

bash scripts/setup-triton.sh
.venv/bin/python -m signalml.services.kafka resolve >/dev/null
say "ready: .venv, .venv-triton, Kafka jars, chromium"
