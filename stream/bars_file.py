"""Read a bars file (parquet or CSV) into a clean, ordered frame.

Columns: ``date`` (or ``ts``), ``symbol``, ``open``, ``high``, ``low``,
``close``, ``volume``, optional ``adj_close``. When ``adj_close`` is present
OHLC are scaled by ``adj_close / close`` (split and dividend adjusted) and
the volume by its inverse, on rows where that ratio is finite and positive;
other rows keep their raw values so the validator rejects them for what
they are.

A date-only timestamp (midnight) is a trading day: its bar closes at the
session close, 16:00 America/New_York, which is what ``ts`` carries. A
timestamp with a time of day is taken as the bar close in UTC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from signalml.errors import DataError

PRICE_COLUMNS = ("open", "high", "low", "close")
REQUIRED = ("symbol", *PRICE_COLUMNS, "volume")
SESSION_CLOSE = pd.Timedelta(hours=16)
EXCHANGE_TZ = "America/New_York"


def read_bars(
    path: str | Path,
    *,
    symbols: Sequence[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    adjust: bool = True,
) -> pd.DataFrame:
    """Bars of ``path`` ordered by (date, symbol), with an int64 ``ts`` column
    (bar close, epoch ms UTC) and a ``row`` column (position in the file).

    ``start`` / ``end`` filter on the date, both inclusive.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"bars file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".gz", ".txt"):
            frame = pd.read_csv(path)
        else:
            raise DataError(f"{path}: unknown format {suffix!r}; use .parquet or .csv")
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow/pandas raise many types
        raise DataError(f"{path}: cannot read: {exc}") from None
    frame.columns = [str(c).lower() for c in frame.columns]
    if "date" not in frame.columns and "ts" not in frame.columns:
        raise DataError(f"{path}: needs a 'date' or 'ts' column; has {list(frame.columns)}")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; has {list(frame.columns)}")

    frame = frame.reset_index(drop=True)
    frame["row"] = np.arange(len(frame), dtype=np.int64)
    if "ts" in frame.columns:
        frame["ts"] = pd.to_numeric(frame["ts"], errors="raise").astype(np.int64)
        frame["date"] = pd.to_datetime(frame["ts"], unit="ms")
    else:
        frame["date"] = pd.to_datetime(frame["date"])
        frame["ts"] = bar_close_ms(frame["date"])
    frame["symbol"] = frame["symbol"].astype(str)
    for column in (*PRICE_COLUMNS, "volume", *(("adj_close",) if "adj_close" in frame else ())):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)

    if symbols:
        frame = frame[frame["symbol"].isin(set(symbols))]
    if start is not None:
        frame = frame[frame["date"] >= pd.Timestamp(start)]
    if end is not None:
        frame = frame[frame["date"] <= pd.Timestamp(end)]

    if adjust and "adj_close" in frame.columns:
        frame = adjust_prices(frame)
    return frame.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)


def adjust_prices(frame: pd.DataFrame) -> pd.DataFrame:
    """OHLC scaled by ``adj_close / close`` and the volume divided by it,
    where that factor is usable.

    A split of n for 1 multiplies a share count by n as it divides the price:
    dividing the volume by the price factor puts past volumes in today's
    shares, so a volume series runs on through a split, and the traded value
    (price times volume) stays that of the day. Qlib adjusts volume the same
    way. (The factor also carries dividends, which move the volume by the
    same small fraction as the prices.)
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = frame["adj_close"].to_numpy() / frame["close"].to_numpy()
    usable = np.isfinite(factor) & (factor > 0)
    factor = np.where(usable, factor, 1.0)
    frame = frame.copy()
    for column in PRICE_COLUMNS:
        frame[column] = frame[column].to_numpy() * factor
    frame["volume"] = frame["volume"].to_numpy() / factor
    return frame


def bar_close_ms(date: pd.Series) -> np.ndarray:
    """Epoch ms UTC of each bar's close (see the module docstring)."""
    dates = pd.DatetimeIndex(date)
    if dates.tz is not None:
        utc = dates.tz_convert("UTC")
    elif len(dates) and (dates == dates.normalize()).all():
        utc = (dates + SESSION_CLOSE).tz_localize(EXCHANGE_TZ).tz_convert("UTC")
    else:
        utc = dates.tz_localize("UTC")
    return (utc.as_unit("ms").asi8).astype(np.int64)
