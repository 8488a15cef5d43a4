"""The runtime imports no training stack.

The engine, the drift monitor, replay, predict, the query API and topic
creation install without the ``train`` extra (runtime image, ``pip install .``),
so none of them may import torch, LightGBM, XGBoost, ONNX, Optuna, matplotlib
or the ``training`` package, at import time or in the modules their CLI
handlers load. Each check runs in a fresh interpreter, so what another test
imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What `signalml serve`, `monitor`, `replay`, `predict`, `topics`, `tail` and
# `status` load (signalml/cli.py's handlers), the query API included.
RUNTIME_MODULES = (
    "signalml.cli",
    "signalml.services.kafka",
    "signalml.services.topics",
    "signalml.status",
    "signalml.client",
    "stream.engine",
    "stream.query",
    "stream.monitor.app",
    "stream.replay",
    "stream.bars_file",
    "stream.predict",
    "models.publish",
)

# Top-level modules of the train extra (pyproject.toml), and our training package.
TRAINING_STACK = ("torch", "lightgbm", "xgboost", "onnx", "onnxruntime", "onnxscript", "optuna", "matplotlib",
                  "training")


def training_imports(modules: tuple[str, ...]) -> dict[str, list[str]]:
    """Module -> the training-stack modules that importing it (after the
    ones before it) brought into a fresh interpreter's ``sys.modules``."""
    probe = (
        "import importlib, json, sys\n"
        f"stack = {list(TRAINING_STACK)!r}\n"
        "seen = lambda: {m for m in sys.modules if m.split('.')[0] in stack}\n"
        "found = {}\n"
        f"for name in {list(modules)!r}:\n"
        "    before = seen()\n"
        "    importlib.import_module(name)\n"
        "    found[name] = sorted(seen() - before)\n"
        "print(json.dumps(found))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_probe_sees_a_training_import():
    assert "torch" in training_imports(("stream.query", "models.deep.lstm"))["models.deep.lstm"]


def test_runtime_modules_import_no_training_stack():
    offenders = {module: found for module, found in training_imports(RUNTIME_MODULES).items() if found}
    assert offenders == {}, f"runtime modules that import the training stack: {offenders}"
