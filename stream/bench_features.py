"""Benchmark of the feature engine: throughput, latency, and ratios to peers.

``run(settings)`` measures, on synthetic random-walk bars and one core:

* ``bar_updates_per_s``: bars per second for a 482- and a 5,000-symbol
  cross-section per call (full configured feature set), and for one bar per
  call (``update_bar``);
* ``latency_us``: p50 / p99 of one cross-section update;
* ``ratio_vs``: engine throughput (5,000-symbol cross-sections, as the
  throughput figure) over a peer's, each on the indicator subset the peer
  offers, measured in the same run (``details.ratio_vs_at_xs_482`` has the
  ratios with 482-symbol cross-sections): ``talipp`` (one talipp object per symbol and indicator),
  ``talib_stream`` (TA-Lib's stateful streaming objects, ``talib.stream``),
  ``pandas_recompute`` (pandas rolling windows recomputed for each new bar).

Every figure is the median over ``repeats``. ``signalml bench features
--json`` prints the returned dict.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from signalml.config import FeatureSettings
from stream.features import FeatureEngine

UNIVERSE_SMALL = 482
UNIVERSE_LARGE = 5000


def synthetic_bars(n_bars: int, n_symbols: int, seed: int = 0) -> dict[str, np.ndarray]:
    """[n_bars, n_symbols] OHLCV of geometric random walks (consistent bars)."""
    rng = np.random.default_rng(seed)
    close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.015, (n_bars, n_symbols)), axis=0))
    spread = rng.uniform(0.0, 0.02, (n_bars, n_symbols)) * close
    high, low = close + spread, close - spread * rng.uniform(0.5, 1.0, (n_bars, n_symbols))
    low = np.minimum(low, close)
    open_ = low + (high - low) * rng.uniform(0.0, 1.0, (n_bars, n_symbols))
    volume = np.round(rng.lognormal(12.0, 1.0, (n_bars, n_symbols)))
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def _symbols(n: int) -> np.ndarray:
    return np.array([f"S{i:05d}" for i in range(n)])


def _cross_sections(settings: FeatureSettings, n_symbols: int, n_measured: int, repeats: int) -> tuple[float, np.ndarray]:
    """(median bars/s, all per-call latencies in µs) of warmed-up engines."""
    engine_probe = FeatureEngine(settings)
    warmup = engine_probe.warmup_bars + 5
    bars = synthetic_bars(warmup + n_measured, n_symbols, seed=n_symbols)
    symbols = _symbols(n_symbols)
    rates, latencies = [], []
    for _ in range(repeats):
        engine = FeatureEngine(settings, capacity=n_symbols)
        for t in range(warmup):
            engine.update(t, symbols, *(bars[f][t] for f in ("open", "high", "low", "close", "volume")))
        samples = np.empty(n_measured)
        for i, t in enumerate(range(warmup, warmup + n_measured)):
            fields = [bars[f][t] for f in ("open", "high", "low", "close", "volume")]
            start = time.perf_counter()
            engine.update(t, symbols, *fields)
            samples[i] = time.perf_counter() - start
        rates.append(n_symbols * n_measured / samples.sum())
        latencies.append(samples * 1e6)
    return float(np.median(rates)), np.concatenate(latencies)


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
                engine.update_bar(symbol, t, *(float(bars[f][t, j]) for f in ("open", "high", "low", "close", "volume")))
                done += 1
        rates.append(done / (time.perf_counter() - start))
    return float(np.median(rates))


def _median_rate(measure: Callable[[], tuple[int, float]], repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        bars_done, seconds = measure()
        rates.append(bars_done / seconds)
    return float(np.median(rates))


# ---------------------------------------------------------------- peers


def _talipp_rate(settings: FeatureSettings, repeats: int) -> float:
    """talipp: RSI, ATR, BB, volume SMA per lookback and one MACD per symbol."""
    from talipp.indicators import ATR, BB, MACD, RSI, SMA
    from talipp.ohlcv import OHLCV

    n_symbols, n_bars = 10, 200
    bars = synthetic_bars(n_bars, n_symbols, seed=2)

    def measure():
        indicators = [
            (
                [RSI(p) for p in settings.lookbacks],
                [ATR(p) for p in settings.lookbacks],
                [BB(p, settings.bollinger_nbdev) for p in settings.lookbacks],
                [SMA(p) for p in settings.lookbacks],
                MACD(settings.macd.fast, settings.macd.slow, settings.macd.signal),
            )
            for _ in range(n_symbols)
        ]
        start = time.perf_counter()
        for t in range(n_bars):
            for j, (rsis, atrs, bbs, smas, macd) in enumerate(indicators):
                o, h, l, c, v = (float(bars[f][t, j]) for f in ("open", "high", "low", "close", "volume"))
                candle = OHLCV(o, h, l, c, v)
                for rsi, atr, bb, sma in zip(rsis, atrs, bbs, smas):
                    rsi.add(c)
                    atr.add(candle)
                    bb.add(c)
                    sma.add(v)
                macd.add(c)
        return n_symbols * n_bars, time.perf_counter() - start

    return _median_rate(measure, repeats)


def _talib_stream_rate(settings: FeatureSettings, repeats: int) -> float:
    """talib.stream objects: RSI, ATR, BBANDS, volume SMA per lookback, one MACD."""
    import talib.stream as ts

    n_symbols, n_bars = 10, 400
    history = 100
    bars = synthetic_bars(history + n_bars, n_symbols, seed=3)

    def measure():
        streams = []
        for j in range(n_symbols):
            h, l, c, v = (np.ascontiguousarray(bars[f][:history, j]) for f in ("high", "low", "close", "volume"))
            streams.append(
                (
                    [ts.RSI(c, p) for p in settings.lookbacks],
                    [ts.ATR(h, l, c, p) for p in settings.lookbacks],
                    [ts.BBANDS(c, p, settings.bollinger_nbdev, settings.bollinger_nbdev) for p in settings.lookbacks],
                    [ts.SMA(v, p) for p in settings.lookbacks],
                    ts.MACD(c, settings.macd.fast, settings.macd.slow, settings.macd.signal),
                )
            )
        start = time.perf_counter()
        for t in range(history, history + n_bars):
            for j, (rsis, atrs, bbs, smas, macd) in enumerate(streams):
                h, l, c, v = (float(bars[f][t, j]) for f in ("high", "low", "close", "volume"))
                for rsi, atr, bb, sma in zip(rsis, atrs, bbs, smas):
                    rsi.update(c)
                    atr.update(h, l, c)
                    bb.update(c)
                    sma.update(v)
                macd.update(c)
        return n_symbols * n_bars, time.perf_counter() - start

    return _median_rate(measure, repeats)


def _pandas_rate(settings: FeatureSettings, repeats: int) -> float:
    """pandas: ret, vol, volume_ratio, bb_position of a 482-symbol
    cross-section, recomputed from the rolling window for each new bar."""
    import pandas as pd

    n_symbols, n_bars = UNIVERSE_SMALL, 20
    window = max(settings.lookbacks) + 1
    bars = synthetic_bars(window + n_bars, n_symbols, seed=4)

    def measure():
        start = time.perf_counter()
        for t in range(window, window + n_bars):
            close = pd.DataFrame(bars["close"][t - window + 1 : t + 1])
            volume = pd.DataFrame(bars["volume"][t - window + 1 : t + 1])
            returns = close.pct_change()
            last = close.iloc[-1]
            for p in settings.lookbacks:
                _ = last / close.iloc[-1 - p] - 1
                _ = returns.rolling(p).std().iloc[-1]
                _ = volume.iloc[-1] / volume.rolling(p).mean().iloc[-1]
                middle = close.rolling(p).mean().iloc[-1]
                deviation = close.rolling(p).std(ddof=0).iloc[-1]
                _ = (last - (middle - settings.bollinger_nbdev * deviation)) / (2 * settings.bollinger_nbdev * deviation)
        return n_symbols * n_bars, time.perf_counter() - start

    return _median_rate(measure, repeats)


def _subset(settings: FeatureSettings, indicators: tuple[str, ...]) -> FeatureSettings:
    return settings.model_copy(update={"indicators": indicators, "alphas": ()})


# ---------------------------------------------------------------- entry point


def run(settings: FeatureSettings, *, json: bool = True, repeats: int = 5, quick: bool = False) -> dict[str, Any]:
    """Measure and return the figures (see the module docstring).

    With ``json`` (the default) every value is a plain, rounded number, ready
    for ``json.dumps``; without it the latency samples are included too.
    ``quick`` shortens every measurement (for smoke tests, not for figures).
    """
    n_small, n_large = (50, 10) if quick else (500, 150)
    repeats = 1 if quick else repeats
    small_rate, small_latency = _cross_sections(settings, UNIVERSE_SMALL, n_small, repeats)
    large_rate, large_latency = _cross_sections(settings, UNIVERSE_LARGE, n_large, repeats)
    single_rate = _single_bars(settings, 400 if quick else 4000, repeats)

    peers = {
        "talipp": (("rsi", "atr", "bb_position", "volume_ratio"), _talipp_rate),
        "talib_stream": (("rsi", "atr", "bb_position", "volume_ratio"), _talib_stream_rate),
        "pandas_recompute": (("bb_position", "volume_ratio", "ret", "vol"), _pandas_rate),
    }
    ratios, ratios_small, peer_rates, engine_rates = {}, {}, {}, {}
    for name, (indicators, measure_peer) in peers.items():
        subset = _subset(settings, indicators)
        large, _ = _cross_sections(subset, UNIVERSE_LARGE, n_large, repeats)
        small, _ = _cross_sections(subset, UNIVERSE_SMALL, n_small, repeats)
        peer_rate = measure_peer(subset, repeats)
        ratios[name], ratios_small[name] = large / peer_rate, small / peer_rate
        peer_rates[name], engine_rates[name] = peer_rate, {"xs_5000": large, "xs_482": small}

    def pct(samples):
        return {"p50": float(np.percentile(samples, 50)), "p99": float(np.percentile(samples, 99))}

    result: dict[str, Any] = {
        "bar_updates_per_s": {"xs_482": small_rate, "xs_5000": large_rate, "single_bar": single_rate},
        "latency_us": {"xs_482": pct(small_latency), "xs_5000": pct(large_latency)},
        "ratio_vs": ratios,
        "details": {
            "features": len(FeatureEngine(settings).feature_names),
            "repeats": repeats,
            "peer_bar_updates_per_s": peer_rates,
            "engine_bar_updates_per_s_on_peer_subset": engine_rates,
            "ratio_vs_at_xs_482": ratios_small,
            "peer_subsets": {name: list(indicators) + ["macd"] * (name != "pandas_recompute") for name, (indicators, _) in peers.items()},
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
