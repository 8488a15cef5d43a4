"""Batch features: a bars table replayed through the streaming engine.

Training and the ``signalml features`` command call :func:`compute_features`;
it feeds the same :class:`~stream.features.engine.FeatureEngine` the live
engine runs, one bar time at a time, so batch and streaming features are
equal bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from signalml.config import FeatureSettings
from stream.bars_file import adjust_prices, read_bars
from signalml.errors import DataError
from stream.features.bars import OUT_OF_ORDER_TS
from stream.features.engine import FeatureEngine
from stream.features.names import feature_names
from stream.features.normalize import normalize_cross_section

PRICE_COLUMNS = ("open", "high", "low", "close")
REQUIRED = ("symbol", *PRICE_COLUMNS, "volume")

__all__ = ["compute_features", "feature_names", "write_features"]


def write_features(bars_path: str | Path, out_path: str | Path, settings: FeatureSettings) -> dict:
    """``signalml features``: features of a bars file (parquet or CSV) to parquet."""
    frame = compute_features(read_bars(bars_path), settings, adjust=False)  # read_bars adjusts
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out, index=False)
    counts = frame.attrs.get("counts", {})
    return {"rows": len(frame), "features": len(frame.columns) - 2, "out": str(out), "rejected": dict(counts.get("rejected", {}))}


def _bar_times_ms(bars: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
    if "ts" in bars.columns and "date" in bars.columns:  # as read by stream.bars_file
        return bars["ts"].to_numpy(dtype=np.int64), pd.Series(pd.to_datetime(bars["date"]), index=bars.index)
    if "date" in bars.columns:
        dates = pd.Series(pd.to_datetime(bars["date"]), index=bars.index)
        naive = dates.dt.tz_convert("UTC").dt.tz_localize(None) if dates.dt.tz is not None else dates
        return naive.to_numpy(dtype="datetime64[ms]").astype(np.int64), dates
    if "ts" in bars.columns:
        ts = bars["ts"].to_numpy(dtype=np.int64)
        return ts, pd.Series(pd.to_datetime(ts, unit="ms"), index=bars.index)
    raise DataError("bars need a 'date' or a 'ts' (epoch ms) column")


def compute_features(
    bars: pd.DataFrame,
    settings: FeatureSettings,
    *,
    adjust: bool = True,
    normalize: bool = False,
) -> pd.DataFrame:
    """Features of every applied bar: one row per (date, symbol).

    ``bars`` has ``date`` (or ``ts`` in epoch ms), ``symbol``, ``open``,
    ``high``, ``low``, ``close``, ``volume`` and optionally ``adj_close``.
    With ``adjust``, OHLC are first scaled by ``adj_close / close``. Bars the
    validator would reject (defects, and a ``ts`` not after the symbol's
    previous bar in the table's order) update nothing and are left out.
    Output columns: ``date``, ``symbol``, then :func:`feature_names`; rows
    sorted by date then symbol. With ``normalize``, each date's features are
    normalised across its symbols as ``settings.normalization`` says.
    ``result.attrs["counts"]`` holds the engine's counts.
    """
    missing = [name for name in REQUIRED if name not in bars.columns]
    if missing:
        raise DataError(f"bars lack column(s) {missing}; need {list(REQUIRED)} and 'date' or 'ts'")
    ts_ms, dates = _bar_times_ms(bars)
    if adjust and "adj_close" in bars.columns:
        bars = adjust_prices(bars)
    prices = {n: bars[n].to_numpy(dtype=np.float64) for n in PRICE_COLUMNS}
    volume = bars["volume"].to_numpy(dtype=np.float64)
    symbols = bars["symbol"].astype(str).to_numpy(dtype=str)

    # In the table's order a bar earlier than its symbol's latest is out of
    # order, as it would be on the stream; equal ts are left to the engine.
    latest_before = pd.Series(ts_ms).groupby(symbols).cummax().groupby(symbols).shift(1)
    late = (latest_before > ts_ms).to_numpy()

    order = np.lexsort((symbols, ts_ms))  # stable: a duplicate keeps its table order
    order = order[~late[order]]
    engine = FeatureEngine(settings, capacity=max(1, len(np.unique(symbols))))
    engine.register(np.unique(symbols))
    names = feature_names(settings)
    ts_sorted = ts_ms[order]
    starts = np.flatnonzero(np.r_[True, ts_sorted[1:] != ts_sorted[:-1]])
    ends = np.r_[starts[1:], len(order)]
    kept_rows, blocks = [], []
    for start, end in zip(starts, ends):
        rows = order[start:end]
        frame = engine.update(
            int(ts_sorted[start]),
            symbols[rows],
            prices["open"][rows],
            prices["high"][rows],
            prices["low"][rows],
            prices["close"][rows],
            volume[rows],
        )
        applied = frame.accepted
        values = frame.values[applied]
        if normalize:
            values = normalize_cross_section(values, settings.normalization, settings.clip_z)
        kept_rows.append(rows[applied])
        blocks.append(np.ascontiguousarray(values))
    kept = np.concatenate(kept_rows) if kept_rows else np.empty(0, dtype=np.int64)
    matrix = np.concatenate(blocks) if blocks else np.empty((0, len(names)))
    result = pd.DataFrame(matrix, columns=list(names))
    result.insert(0, "symbol", symbols[kept])
    result.insert(0, "date", dates.to_numpy()[kept])
    counts = engine.counts
    counts["bars_received"] += int(late.sum())
    counts["rejected"]["out_of_order_ts"] += int(late.sum())
    result.attrs["counts"] = counts
    return result
