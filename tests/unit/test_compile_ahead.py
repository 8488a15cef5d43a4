"""The engine compiles its feature loops before it takes a bar
(:func:`stream.pipeline.compile_ahead`): after that, nothing the engine's
pipeline does (cross-sections, a late bar, a new symbol, a snapshot restored
with its journal replayed) compiles anything more.

Each case runs in a fresh interpreter, since a numba loop compiled once in
this process stays compiled: it counts the compiled signatures of every
numba dispatcher before and after a run of the pipeline. Without the
compile ahead, the same run must compile (else the count could not see it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import gc, json, sys
import msgspec
import numpy as np
from numba.core.dispatcher import Dispatcher
from signalml.config import load_settings
from signalml.contracts import Bar
from stream.barrier import CrossSection
from stream.pipeline import CrossSectionPipeline, compile_ahead

feature_sets, ahead = json.loads(sys.argv[1]), sys.argv[2] == "1"
settings = load_settings(sys.argv[3])
settings = settings.model_copy(update={"features": settings.features.model_copy(update={"feature_sets": tuple(feature_sets)})})

def signatures():
    return {f"{d.py_func.__module__}.{d.py_func.__qualname__}": len(d.signatures)
            for d in gc.get_objects() if isinstance(d, Dispatcher)}

if ahead:
    compile_ahead(settings)
before = signatures()

rng = np.random.default_rng(7)
symbols = [f"S{i:02d}" for i in range(9)]
pipeline = CrossSectionPipeline(settings, journaled=True)
close = 100 + rng.standard_normal(len(symbols)).cumsum()
for t in range(1, 41):
    ts = 60_000 * t
    close = close * np.exp(rng.normal(0, 0.01, len(close)))
    present = [i for i in range(len(symbols)) if not (t % 7 == 0 and i == 3)]  # S03 misses some bar times
    bars = tuple(Bar(symbols[i], ts, float(close[i]), float(close[i]) * 1.01, float(close[i]) * 0.99,
                     float(close[i]), float(rng.integers(1_000, 9_000))) for i in present)
    pipeline.prepare(CrossSection(ts, bars, "complete"))
    if t % 7 == 0:
        pipeline.apply_late(Bar("S03", ts, 100.0, 101.0, 99.0, 100.5, 1_500.0))
    if t == 20:
        base = msgspec.msgpack.decode(msgspec.msgpack.encode(pipeline.rebase()))
journal = msgspec.msgpack.decode(msgspec.msgpack.encode(pipeline.journal))
restored = CrossSectionPipeline(settings, journaled=True)
restored.restore(base, journal)
late = Bar("S99", 60_000 * 41, 50.0, 51.0, 49.0, 50.5, 2_000.0)  # a symbol first seen in a late bar
restored.apply_late(late)

after = signatures()
print(json.dumps({name: n - before.get(name, 0) for name, n in after.items() if n > before.get(name, 0)}))
"""


def _compiled_during_run(feature_sets: list[str], ahead: bool) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(feature_sets), "1" if ahead else "0", str(REPO / "signalml.yaml")],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("feature_sets", [["alpha158", "us_equity", "classic"], ["us_equity"]])
def test_after_compile_ahead_the_pipeline_compiles_nothing(feature_sets):
    assert _compiled_during_run(feature_sets, ahead=True) == {}
    compiled = _compiled_during_run(feature_sets, ahead=False)
    assert compiled, "without the compile ahead the run compiled nothing: the count cannot see a compile"
