#!/usr/bin/env bash
# Set up everything SignalML needs on a fresh machine, idempotently, as an
# ordinary user (nothing here needs root):
#   1. checks the platform first and names everything that is missing;
#   2. the project environment .venv/ (the package, editable, with the train,
#      bench and test extras), pinned by requirements-lock.txt;
#   3. the Triton server's own environment .venv-triton/ (numpy < 2), from the
#      same lock;
#   4. the Kafka broker's jars, resolved by Maven from kafka/pom.xml (cached);
#   5. headless Chromium for the training report's browser test, from
#      Playwright's own installer, unless a Chromium is already there; where it
#      cannot be had, that one test is skipped and says why.
# Needs: Linux with glibc >= 2.35, python3 (3.11+, built with a shared
# libpython), Java 17+, Maven; network to PyPI and Maven Central on the first
# run only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf 'setup: %s\n' "$*" >&2; }

# ------------------------------------------------------------ the platform
PY="${SIGNALML_PYTHON:-python3}"
missing=()
[[ "$(uname -s)" == Linux && -r /proc/self/stat ]] \
    || missing+=("Linux: the service manager reads /proc (this is $(uname -s))")
glibc="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')"
if [[ -z "$glibc" ]] || ! printf '2.35\n%s\n' "$glibc" | sort -V -C; then
    missing+=("glibc >= 2.35: the nvidia-pytriton wheel is manylinux_2_35 (found: ${glibc:-none})")
fi
if ! command -v "$PY" >/dev/null; then
    missing+=("python3 (3.11+): not found (set SIGNALML_PYTHON to another interpreter)")
elif ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    missing+=("Python 3.11+: $PY is $("$PY" --version 2>&1)")
elif ! "$PY" - <<'PYEOF'
import glob, os, sys, sysconfig
libdir = sysconfig.get_config_var("LIBDIR") or ""
name = f"libpython{sys.version_info[0]}.{sys.version_info[1]}.so*"
sys.exit(not (sysconfig.get_config_var("Py_ENABLE_SHARED") or glob.glob(os.path.join(libdir, name))))
PYEOF
then
    missing+=("a Python with a shared libpython (Triton's Python backend stub links it): $PY was built without --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared; Debian: python3.11 and libpython3.11)")
fi
if ! command -v java >/dev/null; then
    missing+=("Java 17+ for the embedded Kafka broker: java not found")
else
    java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
    [[ "${java_major:-0}" -ge 17 ]] || missing+=("Java 17+ for the embedded Kafka broker: found $(java -version 2>&1 | head -1)")
fi
command -v mvn >/dev/null || missing+=("Maven (mvn) to resolve the Kafka broker's jars from Maven Central")
if ((${#missing[@]})); then
    say "error: this machine lacks what SignalML needs:"
    for item in "${missing[@]}"; do say "  - $item"; done
    exit 1
fi

# ------------------------------------------------------------ .venv
# torch: CPU-only wheels from the PyTorch index on a machine without an NVIDIA
# GPU (about 0.9 GB less), where that index is reachable; otherwise PyPI's
# build, which bundles CUDA (a few GB). SIGNALML_TORCH_INDEX overrides.
TORCH_INDEX="${SIGNALML_TORCH_INDEX-}"
if [[ -z "${SIGNALML_TORCH_INDEX+set}" ]] && ! [[ -e /proc/driver/nvidia/version ]]; then
    if "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' \
        https://download.pytorch.org/whl/cpu/torch/ >/dev/null 2>&1; then
        TORCH_INDEX=https://download.pytorch.org/whl/cpu
    fi
fi
STAMP=.venv/.signalml-setup
WANT="$(cat pyproject.toml requirements-lock.txt | sha256sum | cut -d' ' -f1) ${TORCH_INDEX:-pypi}"
if [[ -x .venv/bin/python && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]]; then
    say ".venv is up to date"
else
    say "creating .venv (project with train, bench and test extras; torch from ${TORCH_INDEX:-PyPI})"
    [[ -x .venv/bin/python ]] || "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    # An environment made before the train extra took xgboost-cpu has xgboost:
    # both install the same `xgboost` module, so the old one goes first.
    if .venv/bin/python -m pip show -q xgboost >/dev/null 2>&1; then
        .venv/bin/python -m pip uninstall -y -q xgboost xgboost-cpu
    fi
    .venv/bin/python -m pip install -q -c requirements-lock.txt ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
        -e '.[train,bench,test]'
    echo "$WANT" > "$STAMP"
fi

bash scripts/setup-triton.sh
.venv/bin/python -m signalml.services.kafka resolve >/dev/null

# ------------------------------------------------------------ Chromium
if .venv/bin/python -m tests.browser >/dev/null 2>&1; then
    say "chromium: $(.venv/bin/python -m tests.browser)"
elif .venv/bin/python -m playwright install chromium >/dev/null 2>&1; then
    say "chromium: installed by Playwright ($(.venv/bin/python -m tests.browser))"
else
    say "warning: no Chromium, and Playwright's installer could not download one:" \
        "the report's browser test will be skipped. Set SIGNALML_CHROMIUM to a Chromium binary" \
        "(e.g. your distribution's chromium package) to run it."
fi
say "ready: .venv, .venv-triton, Kafka jars"
