"""``signalml bench saturation``: the bar rate at which one engine saturates, per universe size.

A private world as for ``bench e2e`` (own topics, own Triton, the small model
set). For each universe size N, synthetic bars (warm-up bar times plus
``scored`` bar times) are replayed into a fresh bars topic and one engine
runs over the backlog. A backlogged engine is a saturated one, so the rate
at which it gets through the *scored* cross-sections is the highest bar
rate a live feed of N symbols can have without the engine falling behind:

* ``cross_sections_per_s``: scored bar times / (last commit − first commit
  that carried signals), both timed inside the engine, so start-up, model
  warm-up, the unscored warm-up bar times and the idle wait are excluded;
* ``bars_per_s``: the same times N;
* ``ms_per_cross_section``: its inverse.

A line ``t(N) = fixed_ms + per_symbol_us · N`` is fitted by least squares to
the milliseconds per cross-section: ``fixed_ms`` is what a cross-section
costs whatever its size (the transaction, the Triton round trips, the loop),
``per_symbol_us`` what each symbol adds (decoding, features, inference
compute, signals). One engine saturates at ``1000 / t(N)`` bar times per
second. Absolute figures move 2–3× between machines of this kind; the fit's
split between the two terms is what carries over.
"""

from __future__ import annotations

import numpy as np

from bench.e2e import _fresh, _instrumented, private_world, synthetic_bars
from signalml.config import Settings
from stream.replay import replay

SIZES = (100, 250, 500, 1000, 2000, 5000)


def _saturated(world: Settings, n: int, warmup_bars: int, scored: int, tag: str, created: list[str]) -> dict:
    from stream.engine import Engine

    settings = _fresh(world, tag, created)
    replay(settings, synthetic_bars(n, warmup_bars + scored, seed=n), source_file="synthetic")
    engine = Engine(settings)
    commits = _instrumented(engine)["commits"]
    engine.run(idle_exit_s=2.0, serve_http=False)
    signals = int(engine.metrics.signals_out._value.get())
    scoring = [(t, s) for t, s in commits if s > 0]
    if signals != n * scored or len(scoring) < 2:
        raise RuntimeError(f"{n} symbols: {signals} signals in {len(scoring)} commits, expected {n * scored}")
    (t0, s0), (t1, s1) = scoring[0], scoring[-1]
    per_s = (s1 - s0) / n / (t1 - t0)  # the first scoring commit's own cross-sections are not timed
    return {
        "symbols": n,
        "scored_bar_times": scored,
        "timed_cross_sections": round((s1 - s0) / n, 2),
        "commits": len(scoring),
        "cross_sections_per_s": round(per_s, 2),
        "bars_per_s": round(per_s * n, 1),
        "ms_per_cross_section": round(1000 / per_s, 2),
    }


def fit(points: list[dict]) -> dict:
    """Least-squares ``ms = fixed_ms + per_symbol_us * N / 1000`` over the measured sizes."""
    n = np.array([p["symbols"] for p in points], dtype=float)
    ms = np.array([p["ms_per_cross_section"] for p in points], dtype=float)
    slope, intercept = np.polyfit(n, ms, 1)
    predicted = intercept + slope * n
    worst = float(np.max(np.abs(predicted - ms) / ms))
    return {"fixed_ms": round(float(intercept), 2), "per_symbol_us": round(float(slope) * 1000, 2),
            "max_relative_error": round(worst, 3)}


def scored_bar_times(n: int) -> int:
    """About 40,000 scored bars per size (at least 12 bar times): small
    universes need many bar times for the timed span to cover many commits."""
    return int(min(200, max(12, 40_000 // n)))


def run(settings: Settings, *, sizes: tuple[int, ...] = SIZES, warmup_bars: int = 25, quick: bool = False) -> dict:
    if quick:
        sizes = (40, 120)
    result: dict = {"points": []}
    with private_world(settings, warmup_bars=warmup_bars, prefix="signalml-bench-saturation-") as pw:
        result["model_set"] = pw.manifest.model_set
        result["members"] = [f"{m.name} v{m.version} ({m.input})" for m in pw.manifest.members]
        for n in sizes:
            scored = 30 if quick else scored_bar_times(n)
            result["points"].append(_saturated(pw.settings, n, warmup_bars, scored, f"sat{n}", pw.created))
    result["fit"] = fit(result["points"])
    result["saturation_bar_times_per_s"] = {
        f"xs_{p['symbols']}": p["cross_sections_per_s"] for p in result["points"]}
    result["notes"] = (
        "One engine over a backlog of synthetic bars per universe size; cross_sections_per_s = scored bar "
        "times / (last commit - first commit carrying signals), timed inside the engine. A live feed of N "
        "symbols faster than that falls behind. fit: ms per cross-section = fixed_ms + per_symbol_us * N / "
        "1000. Kafka, Triton and the engine share the machine's cores."
    )
    return result
