"""Benchmark of the feature engine: throughput, latency, and ratios to peers.

``run(settings)`` measures the configured feature selection on synthetic
random-walk bars, on one core:

* ``bar_updates_per_s`` and ``feature_updates_per_s`` (bars times the
  number of features): for a 482- and a 5,000-symbol cross-section per call,
  and for one bar per call (``update_bar``);
* ``latency_us``: p50 / p99 of one cross-section update;
* ``ratio_vs``: engine throughput (5,000-symbol cross-sections) over a
  peer's, each on the subset of the selected features the peer offers (see
  :mod:`bench.feature_peers`), measured in the same run;
  ``details.ratio_vs_at_xs_482`` has the ratios with 482-symbol
  cross-sections. A peer that offers none of the selected features has no
  ratio (null).

Each cross-section figure is the median over ``repeats`` segments of one
warmed-up engine. ``details.load_average`` records the machine's load before
and after, since figures from a shared machine vary with it.
``signalml bench features --json`` prints the returned dict.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from signalml.config import FeatureSettings
from bench.feature_peers import FIELDS, RATES, peer_subset, synthetic_bars
from stream.features import FeatureEngine, feature_names

UNIVERSE_SMALL = 482
UNIVERSE_LARGE = 5000

__all__ = ["run", "synthetic_bars"]


def _symbols(n: int) -> np.ndarray:
    return np.array([f"S{i:05d}" for i in range(n)])


def _cross_sections(settings: FeatureSettings, n_symbols: int, n_measured: int, repeats: int) -> tuple[float, np.ndarray]:
    """(median bars/s over ``repeats`` segments of ``n_measured`` cross-sections,
    every per-call latency in µs) of one engine past its warm-up."""
    engine = FeatureEngine(settings, capacity=n_symbols)
    warmup = engine.warmup_bars + 5
    total = warmup + n_measured * repeats
    bars = synthetic_bars(total, n_symbols, seed=n_symbols)
    symbols = _symbols(n_symbols)
    engine.register(symbols)
    for t in range(warmup):
        engine.update(t, symbols, *(bars[f][t] for f in FIELDS))
    samples = np.empty(n_measured * repeats)
    for i, t in enumerate(range(warmup, total)):
        fields = [bars[f][t] for f in FIELDS]
        start = time.perf_counter()
        engine.update(t, symbols, *fields)
        samples[i] = time.perf_counter() - start
    rates = [n_symbols * n_measured / segment.sum() for segment in samples.reshape(repeats, n_measured)]
    return float(np.median(rates)), samples * 1e6


def _single_bars(settings: FeatureSettings, n_bars: int, repeats: int) -> float:
    n_symbols = 20
    bars = synthetic_bars(n_bars // n_symbols + 1, n_symbols, seed=1)
    symbols = _symbols(n_symbols).tolist()
    rates = []
    for _ in range(repeats):
        engine = FeatureEngine(settings, capacity=n_symbols)
        start = time.perf_counter()
        done = 0
        for t in range(n_bars // n_symbols):
            for j, symbol in enumerate(symbols):
                engine.update_bar(symbol, t, *(float(bars[f][t, j]) for f in FIELDS))
                done += 1
        rates.append(done / (time.perf_counter() - start))
    return float(np.median(rates))


def run(settings: FeatureSettings, *, json: bool = True, repeats: int = 5, quick: bool = False) -> dict[str, Any]:
    """Measure and return the figures (see the module docstring).

    With ``json`` (the default) every value is a plain, rounded number, ready
    for ``json.dumps``; without it the latency samples are included too.
    ``quick`` shortens every measurement (for smoke tests, not for figures).
    """
    load_before = os.getloadavg()
    n_small, n_large = (20, 3) if quick else (100, 30)
    repeats = 1 if quick else repeats
    names = feature_names(settings)
    small_rate, small_latency = _cross_sections(settings, UNIVERSE_SMALL, n_small, repeats)
    large_rate, large_latency = _cross_sections(settings, UNIVERSE_LARGE, n_large, repeats)
    single_rate = _single_bars(settings, 400 if quick else 4000, repeats)

    ratios, ratios_small, peer_rates, engine_rates, subsets = {}, {}, {}, {}, {}
    for peer, measure_peer in RATES.items():
        subset = peer_subset(peer, names)
        subsets[peer] = list(subset)
        if not subset:
            ratios[peer] = ratios_small[peer] = None
            continue
        narrowed = settings.model_copy(update={"feature_sets": subset, "exclude": ()})
        large, _ = _cross_sections(narrowed, UNIVERSE_LARGE, n_large, repeats)
        small, _ = _cross_sections(narrowed, UNIVERSE_SMALL, n_small, repeats)
        peer_rate = measure_peer(subset, settings, repeats)
        ratios[peer], ratios_small[peer] = large / peer_rate, small / peer_rate
        peer_rates[peer], engine_rates[peer] = peer_rate, {"xs_5000": large, "xs_482": small}

    def pct(samples):
        return {"p50": float(np.percentile(samples, 50)), "p99": float(np.percentile(samples, 99))}

    bar_rates = {"xs_482": small_rate, "xs_5000": large_rate, "single_bar": single_rate}
    result: dict[str, Any] = {
        "features": len(names),
        "feature_sets": list(settings.feature_sets),
        "bar_updates_per_s": bar_rates,
        "feature_updates_per_s": {k: v * len(names) for k, v in bar_rates.items()},
        "latency_us": {"xs_482": pct(small_latency), "xs_5000": pct(large_latency)},
        "ratio_vs": ratios,
        "details": {
            "repeats": repeats,
            "cross_sections_measured": {"xs_482": n_small * repeats, "xs_5000": n_large * repeats},
            "peer_bar_updates_per_s": peer_rates,
            "engine_bar_updates_per_s_on_peer_subset": engine_rates,
            "ratio_vs_at_xs_482": ratios_small,
            "peer_subsets": subsets,
            "cpus": os.cpu_count(),
            "load_average": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
        },
    }
    if json:
        return _rounded(result)
    result["latency_us"]["xs_482"]["samples"] = small_latency
    result["latency_us"]["xs_5000"]["samples"] = large_latency
    return result


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return value


if __name__ == "__main__":  # pragma: no cover - manual use
    import json as json_module

    print(json_module.dumps(run(FeatureSettings()), indent=2))
