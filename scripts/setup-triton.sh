#!/usr/bin/env bash
# Create the embedded Triton server's environment (default: <repo>/.venv-triton).
#
#   scripts/setup-triton.sh [VENV_DIR]
#
# Installs scripts/triton-requirements.txt (numpy 1.26, nvidia-pytriton 0.7.0
# = tritonserver 2.51.0, and what the Python-backend models import) into its
# own venv, built from the same Python as the project, with requirements-lock.txt
# as constraints (every pin but numpy's, see scripts/lock.sh), then copies the
# Python backend stub for that Python version into the wheel's backends/python/.
# Idempotent: a stamp file in the venv records what was installed; when it
# matches, nothing is done.
#
# Python: $SIGNALML_PYTHON if set, else the interpreter behind <repo>/.venv,
# else python3 on PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQS="$ROOT/scripts/triton-requirements.txt"
LOCK="$ROOT/requirements-lock.txt"
VENV="${1:-$ROOT/.venv-triton}"
case "$VENV" in /*) ;; *) VENV="$PWD/$VENV" ;; esac
# The stamp records paths inside the venv; through a symlink (a venv shared
# by another checkout) they would point into whatever the link lives in.
VENV="$(realpath -m "$VENV")"
STAMP="$VENV/signalml-triton.json"
STAMP_VERSION=3

say() { printf 'setup-triton: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# ------------------------------------------------------------ the interpreter
if [[ -n "${SIGNALML_PYTHON:-}" ]]; then
    PY="$SIGNALML_PYTHON"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then
    PY="$("$ROOT/.venv/bin/python" -c 'import sys; print(sys._base_executable)')"
else
    PY="$(command -v python3 || true)"
fi
[[ -n "$PY" && -x "$PY" ]] || die "no python3 found (set SIGNALML_PYTHON)"
# Resolve shims/symlinks to the real interpreter so the venv does not depend
# on a version manager's shim.
PY="$("$PY" -c 'import os, sys; print(os.path.realpath(sys.executable))')"
read -r PYVER LIBDIR SHARED < <("$PY" -c 'import sys, sysconfig as s
print(f"{sys.version_info[0]}.{sys.version_info[1]}", s.get_config_var("LIBDIR") or "-", s.get_config_var("Py_ENABLE_SHARED") or 0)')
case "$PYVER" in 3.8|3.9|3.10|3.11|3.12|3.13) ;; *) die "Python $PYVER: nvidia-pytriton 0.7.0 ships backend stubs for 3.8-3.13 only" ;; esac
if [[ "$SHARED" != 1 ]]; then
    say "warning: $PY was built without --enable-shared; the backend stub needs libpython$PYVER.so.1.0 (from the system, if any)"
fi

REQ_HASH="$(cat "$REQS" "$LOCK" | sha256sum | cut -d' ' -f1)"
WANT="$STAMP_VERSION $REQ_HASH $PY $PYVER"

# ------------------------------------------------------------ up to date?
if [[ -f "$STAMP" && -x "$VENV/bin/python" ]]; then
    HAVE="$("$VENV/bin/python" - "$STAMP" <<'PYEOF' 2>/dev/null || true
import json, os, sys
s = json.load(open(sys.argv[1]))
ok = all(os.path.exists(s[k]) for k in ("tritonserver", "stub", "backend_directory"))
print(f'{s["stamp_version"]} {s["requirements_sha256"]} {s["python"]} {s["python_version"]}' if ok else "")
PYEOF
)"
    if [[ "$HAVE" == "$WANT" ]]; then
        say "up to date: $VENV"
        exit 0
    fi
fi

# ------------------------------------------------------------ venv + packages
if [[ -x "$VENV/bin/python" ]] && \
   [[ "$("$VENV/bin/python" -c 'import os, sys; print(os.path.realpath(sys._base_executable))' 2>/dev/null)" == "$PY" ]]; then
    say "updating $VENV"
else
    say "creating $VENV with $PY (Python $PYVER)"
    "$PY" -m venv --clear "$VENV"
fi
rm -f "$STAMP"
# The lock's pins but numpy's: the lock resolves numpy for the project (2.x),
# the server keeps the numpy < 2 that triton-requirements.txt pins.
CONSTRAINTS="$VENV/constraints.txt"
grep -v '^numpy==' "$LOCK" > "$CONSTRAINTS"
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQS" -c "$CONSTRAINTS"

# numpy 2 in the server makes the Python backend return zeros silently.
"$VENV/bin/python" - <<'PYEOF' || die "the server venv's packages do not import (see above)"
import numpy, lightgbm, xgboost, onnxruntime
assert int(numpy.__version__.split(".")[0]) < 2, f"numpy {numpy.__version__} in the server venv; must be < 2"
PYEOF

# The backend stub imports each model's model.py from its version folder;
# a __pycache__ appearing there makes Triton think the model changed, so the
# next load_model of unchanged files would reload it. The stub ignores
# PYTHONDONTWRITEBYTECODE but runs site, so a .pth switches bytecode off
# for this (server-only) venv.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
echo "import sys; sys.dont_write_bytecode = True" > "$SITE/signalml_no_bytecode.pth"

# ------------------------------------------------------------ backend stub
WHEEL="$("$VENV/bin/python" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("pytriton").origin))')/tritonserver"
SRC="$WHEEL/python_backend_stubs/$PYVER/triton_python_backend_stub"
DST="$WHEEL/backends/python/triton_python_backend_stub"
[[ -f "$SRC" ]] || die "no backend stub for Python $PYVER in $WHEEL/python_backend_stubs"
[[ -f "$WHEEL/bin/tritonserver" ]] || die "tritonserver binary missing from $WHEEL/bin"
cp -f "$SRC" "$DST"
chmod 0755 "$DST" "$WHEEL/bin/tritonserver"

# The stub must find every library (its RPATH covers the wheel's bundled ones;
# libpython comes from the interpreter's LIBDIR, which triton.py puts on
# LD_LIBRARY_PATH).
if command -v ldd >/dev/null; then
    MISSING="$(LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "$DST" "$WHEEL/bin/tritonserver" | grep 'not found' || true)"
    [[ -z "$MISSING" ]] || die "unresolved libraries:
$MISSING"
fi

# ------------------------------------------------------------ stamp
"$VENV/bin/python" - "$STAMP" "$REQ_HASH" "$PY" "$PYVER" "$LIBDIR" "$WHEEL" "$STAMP_VERSION" <<'PYEOF'
import json, os, sys
from importlib.metadata import version
stamp, req_hash, py, pyver, libdir, wheel, stamp_version = sys.argv[1:]
data = {
    "stamp_version": int(stamp_version),
    "requirements_sha256": req_hash,
    "python": py,
    "python_version": pyver,
    "libdir": libdir if libdir != "-" else "",
    "wheel": wheel,
    "tritonserver": os.path.join(wheel, "bin", "tritonserver"),
    "backend_directory": os.path.join(wheel, "backends"),
    "stub": os.path.join(wheel, "backends", "python", "triton_python_backend_stub"),
    "packages": {p: version(p) for p in ("nvidia-pytriton", "numpy", "lightgbm", "xgboost-cpu", "onnxruntime")},
}
tmp = stamp + ".tmp"
with open(tmp, "w") as f:
    json.dump(data, f, indent=2)
os.replace(tmp, stamp)
PYEOF
say "ready: $VENV (Python $PYVER, $(sed -n 's/.*"nvidia-pytriton": "\(.*\)".*/nvidia-pytriton \1/p' "$STAMP"))"
