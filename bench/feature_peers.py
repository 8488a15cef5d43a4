"""The peers of the feature-engine benchmark, each on the features it offers.

For a feature selection, each peer computes the selected features it has an
indicator for, with its own objects or calls, on synthetic bars:

* ``talipp``: one talipp object per symbol and indicator (RSI, ATR, BB, SMA,
  MACD, StdDev, ROC, DonchianChannels for MAX and MIN, Aroon for IMAX and
  IMIN), updated bar by bar;
* ``talib_stream``: TA-Lib's stateful streaming objects (``talib.stream``:
  RSI, ATR, BBANDS, SMA, MACD, STDDEV, ROCR, LINEARREG_SLOPE, LINEARREG,
  MAX, MIN, MAXINDEX, MININDEX, CORREL, PERCENTILE, PERCENTRANK);
* ``pandas_recompute``: pandas rolling windows over a 482-symbol frame,
  recomputed from the window for each new bar (the batch way of producing
  streaming values).

:func:`peer_subset` says which selected features a peer covers; the
benchmark measures the engine on exactly that subset for the ratio.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import numpy as np

from signalml.config import FeatureSettings

FIELDS = ("open", "high", "low", "close", "volume")
UNIVERSE_SMALL = 482


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


def _split(name: str) -> tuple[str, int | None]:
    """``rsi_14`` -> (rsi, 14); ``MA20`` -> (MA, 20); ``macd`` -> (macd, None)."""
    match = re.fullmatch(r"([a-z_]+)_(\d+)|([A-Z]+)(\d+)", name)
    if match is None:
        return name, None
    if match.group(1):
        return match.group(1), int(match.group(2))
    return match.group(3), int(match.group(4))


# Per peer: feature family -> the key of the object that computes it (several
# features may share one object, e.g. MACD's three, Donchian's MAX and MIN).
TALIPP = {"rsi": "RSI", "atr": "ATR", "bb_position": "BB", "volume_ratio": "SMA_volume", "macd": "MACD",
          "macd_signal": "MACD", "macd_hist": "MACD", "MA": "SMA", "STD": "StdDev", "ROC": "ROC",
          "MAX": "Donchian", "MIN": "Donchian", "IMAX": "Aroon", "IMIN": "Aroon", "VMA": "SMA_volume",
          "VSTD": "StdDev_volume"}
TALIB = {"rsi": "RSI", "atr": "ATR", "bb_position": "BBANDS", "volume_ratio": "SMA_volume", "macd": "MACD",
         "macd_signal": "MACD", "macd_hist": "MACD", "MA": "SMA", "STD": "STDDEV", "ROC": "ROCR",
         "BETA": "LINEARREG_SLOPE", "RESI": "LINEARREG", "MAX": "MAX", "MIN": "MIN", "IMAX": "MAXINDEX",
         "IMIN": "MININDEX", "CORR": "CORREL", "QTLU": "PERCENTILE_80", "QTLD": "PERCENTILE_20",
         "RANK": "PERCENTRANK", "VMA": "SMA_volume", "VSTD": "STDDEV_volume"}
PANDAS = ("ret", "vol", "volume_ratio", "bb_position", "ROC", "MA", "STD", "MAX", "MIN", "QTLU", "QTLD", "RANK",
          "CORR", "VMA", "VSTD")
PEERS = {"talipp": TALIPP, "talib_stream": TALIB, "pandas_recompute": dict.fromkeys(PANDAS, "")}


def peer_subset(peer: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The selected features ``peer`` has an indicator for."""
    return tuple(name for name in names if _split(name)[0] in PEERS[peer])


def _objects(peer: str, names: tuple[str, ...]) -> list[tuple[str, int | None]]:
    """The distinct (object key, window) a peer needs for ``names``."""
    table = PEERS[peer]
    wanted = [(table[family], window) for family, window in map(_split, names)]
    return list(dict.fromkeys(wanted))


def _median_rate(measure: Callable[[], tuple[int, float]], repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        bars_done, seconds = measure()
        rates.append(bars_done / seconds)
    return float(np.median(rates))


def talipp_rate(names: tuple[str, ...], settings: FeatureSettings, repeats: int) -> float:
    """Bars per second of talipp computing ``names`` (one object per symbol and indicator)."""
    from talipp.indicators import ATR, BB, MACD, ROC, RSI, SMA, Aroon, DonchianChannels, StdDev
    from talipp.ohlcv import OHLCV

    makers = {
        "RSI": (lambda p: RSI(p), "close"), "ATR": (lambda p: ATR(p), "candle"),
        "BB": (lambda p: BB(p, settings.bollinger_nbdev), "close"), "SMA": (lambda p: SMA(p), "close"),
        "SMA_volume": (lambda p: SMA(p), "volume"), "StdDev": (lambda p: StdDev(p), "close"),
        "StdDev_volume": (lambda p: StdDev(p), "volume"), "ROC": (lambda p: ROC(p), "close"),
        "Donchian": (lambda p: DonchianChannels(p), "candle"), "Aroon": (lambda p: Aroon(p), "candle"),
        "MACD": (lambda _: MACD(settings.macd.fast, settings.macd.slow, settings.macd.signal), "close"),
    }
    objects = _objects("talipp", names)
    n_symbols, n_bars = 10, 200
    bars = synthetic_bars(n_bars, n_symbols, seed=2)

    def measure():
        per_symbol = [[(makers[key][0](window), makers[key][1]) for key, window in objects] for _ in range(n_symbols)]
        start = time.perf_counter()
        for t in range(n_bars):
            for j, indicators in enumerate(per_symbol):
                o, h, lo, c, v = (float(bars[f][t, j]) for f in FIELDS)
                inputs = {"close": c, "volume": v, "candle": OHLCV(o, h, lo, c, v)}
                for indicator, source in indicators:
                    indicator.add(inputs[source])
        return n_symbols * n_bars, time.perf_counter() - start

    return _median_rate(measure, repeats)


def talib_stream_rate(names: tuple[str, ...], settings: FeatureSettings, repeats: int) -> float:
    """Bars per second of TA-Lib's streaming objects computing ``names``."""
    import talib.stream as ts

    nbdev, macd = settings.bollinger_nbdev, settings.macd
    makers = {
        "RSI": lambda s, p: (ts.RSI(s["close"], p), ("close",)),
        "ATR": lambda s, p: (ts.ATR(s["high"], s["low"], s["close"], p), ("high", "low", "close")),
        "BBANDS": lambda s, p: (ts.BBANDS(s["close"], p, nbdev, nbdev), ("close",)),
        "SMA": lambda s, p: (ts.SMA(s["close"], p), ("close",)),
        "SMA_volume": lambda s, p: (ts.SMA(s["volume"], p), ("volume",)),
        "MACD": lambda s, p: (ts.MACD(s["close"], macd.fast, macd.slow, macd.signal), ("close",)),
        "STDDEV": lambda s, p: (ts.STDDEV(s["close"], p), ("close",)),
        "STDDEV_volume": lambda s, p: (ts.STDDEV(s["volume"], p), ("volume",)),
        "ROCR": lambda s, p: (ts.ROCR(s["close"], p), ("close",)),
        "LINEARREG_SLOPE": lambda s, p: (ts.LINEARREG_SLOPE(s["close"], p), ("close",)),
        "LINEARREG": lambda s, p: (ts.LINEARREG(s["close"], p), ("close",)),
        "MAX": lambda s, p: (ts.MAX(s["high"], p), ("high",)),
        "MIN": lambda s, p: (ts.MIN(s["low"], p), ("low",)),
        "MAXINDEX": lambda s, p: (ts.MAXINDEX(s["high"], p), ("high",)),
        "MININDEX": lambda s, p: (ts.MININDEX(s["low"], p), ("low",)),
        "CORREL": lambda s, p: (ts.CORREL(s["close"], s["log_volume"], p), ("close", "log_volume")),
        "PERCENTILE_80": lambda s, p: (ts.PERCENTILE(s["close"], p, 80.0), ("close",)),
        "PERCENTILE_20": lambda s, p: (ts.PERCENTILE(s["close"], p, 20.0), ("close",)),
        "PERCENTRANK": lambda s, p: (ts.PERCENTRANK(s["close"], p), ("close",)),
    }
    objects = _objects("talib_stream", names)
    n_symbols, n_bars, history = 10, 400, 100
    bars = synthetic_bars(history + n_bars, n_symbols, seed=3)
    bars["log_volume"] = np.log(bars["volume"] + 1.0)

    def measure():
        per_symbol = []
        for j in range(n_symbols):
            seed = {k: np.ascontiguousarray(v[:history, j]) for k, v in bars.items()}
            per_symbol.append([makers[key](seed, window) for key, window in objects])
        start = time.perf_counter()
        for t in range(history, history + n_bars):
            for j, streams in enumerate(per_symbol):
                values = {k: float(v[t, j]) for k, v in bars.items()}
                for stream, inputs in streams:
                    stream.update(*(values[k] for k in inputs))
        return n_symbols * n_bars, time.perf_counter() - start

    return _median_rate(measure, repeats)


def pandas_rate(names: tuple[str, ...], settings: FeatureSettings, repeats: int) -> float:
    """Bars per second of pandas recomputing ``names`` of a 482-symbol
    cross-section from rolling windows for each new bar."""
    import pandas as pd

    wanted = [_split(name) for name in names]
    window = max([w for _, w in wanted if w is not None] + [2]) + 1
    n_symbols, n_bars = UNIVERSE_SMALL, 10
    bars = synthetic_bars(window + n_bars, n_symbols, seed=4)
    nbdev = settings.bollinger_nbdev

    def measure():
        start = time.perf_counter()
        for t in range(window, window + n_bars):
            frame = {k: pd.DataFrame(bars[k][t - window + 1 : t + 1]) for k in ("high", "low", "close", "volume")}
            close, volume = frame["close"], frame["volume"]
            last = close.iloc[-1]
            for family, d in wanted:
                if family == "ret":
                    _ = last / close.iloc[-1 - d] - 1
                elif family == "vol":
                    _ = close.pct_change().rolling(d).std().iloc[-1]
                elif family == "volume_ratio":
                    _ = volume.iloc[-1] / volume.rolling(d).mean().iloc[-1]
                elif family == "bb_position":
                    middle, deviation = close.rolling(d).mean().iloc[-1], close.rolling(d).std(ddof=0).iloc[-1]
                    _ = (last - (middle - nbdev * deviation)) / (2 * nbdev * deviation)
                elif family == "ROC":
                    _ = close.iloc[-1 - d] / last
                elif family == "MA":
                    _ = close.rolling(d).mean().iloc[-1] / last
                elif family == "STD":
                    _ = close.rolling(d).std().iloc[-1] / last
                elif family == "MAX":
                    _ = frame["high"].rolling(d).max().iloc[-1] / last
                elif family == "MIN":
                    _ = frame["low"].rolling(d).min().iloc[-1] / last
                elif family in ("QTLU", "QTLD"):
                    _ = close.rolling(d).quantile(0.8 if family == "QTLU" else 0.2).iloc[-1] / last
                elif family == "RANK":
                    _ = close.rolling(d).rank(pct=True).iloc[-1]
                elif family == "CORR":
                    _ = close.rolling(d).corr(np.log(volume + 1)).iloc[-1]
                elif family == "VMA":
                    _ = volume.rolling(d).mean().iloc[-1] / (volume.iloc[-1] + 1e-12)
                elif family == "VSTD":
                    _ = volume.rolling(d).std().iloc[-1] / (volume.iloc[-1] + 1e-12)
        return n_symbols * n_bars, time.perf_counter() - start

    return _median_rate(measure, repeats)


RATES = {"talipp": talipp_rate, "talib_stream": talib_stream_rate, "pandas_recompute": pandas_rate}
