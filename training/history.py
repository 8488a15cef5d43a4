"""The bar history a retrain learns from: a bars store plus the bars topic.

The topic holds days, not years (retention, and a feed that started
recently), so on its own it leaves too little for a walk-forward. The store
(``retrain.history_store``: a bars file, by default the bundled one) holds
the years before; the topic holds the recent bars and is authoritative from
its first bar time on: store bars from that time on are dropped, so a bar
present in both is taken once, as the engine saw it. ``history_store: null``
reads the topic alone.

Both are returned as :func:`stream.bars_file.read_bars` returns a file
(adjusted prices, ``ts`` = bar close in epoch ms, ``row``), with ``date``
derived from ``ts`` for every row so both sources share one bar clock.
"""

from __future__ import annotations

import numpy as np
import msgspec
import pandas as pd

from signalml.config import Settings
from signalml.contracts import Bar, decoder

COLUMNS = ["symbol", "ts", "open", "high", "low", "close", "volume"]


def bars_from_topic(settings: Settings) -> pd.DataFrame:
    """Every decodable bar on the bars topic (first of a duplicated
    (symbol, ts)), as :func:`stream.bars_file.read_bars` gives a file."""
    from stream.topic_reader import read_topic

    rows = []
    bar_decoder = decoder(Bar)
    for message in read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.bars.name):
        try:
            bar = bar_decoder.decode(message.value())
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # the engine dead-letters these; they are no history
        rows.append((bar.symbol, bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume))
    return _ordered(pd.DataFrame(rows, columns=COLUMNS).drop_duplicates(["symbol", "ts"], keep="first"))


def merge_history(store: pd.DataFrame | None, topic: pd.DataFrame) -> pd.DataFrame:
    """Store bars before the topic's first bar time, then the topic's bars."""
    if store is None or store.empty:
        return _ordered(topic[COLUMNS])
    if topic.empty:
        return _ordered(store[COLUMNS])
    older = store[store["ts"] < int(topic["ts"].min())]
    return _ordered(pd.concat([older[COLUMNS], topic[COLUMNS]], ignore_index=True))


def recent(bars: pd.DataFrame, bar_times: int) -> pd.DataFrame:
    """The last ``bar_times`` bar times of ``bars``."""
    times = np.unique(bars["ts"].to_numpy())
    return bars[bars["ts"] >= times[-bar_times]].reset_index(drop=True) if len(times) > bar_times else bars


def load_history(settings: Settings, bars_path: str | None = None) -> pd.DataFrame:
    """``bars_path`` alone when given; else the store and the topic merged."""
    from stream.bars_file import read_bars

    if bars_path:
        return read_bars(bars_path)
    store_path = settings.retrain.history_store
    store = read_bars(settings.path(store_path)) if store_path else None
    return merge_history(store, bars_from_topic(settings))


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["ts"] = frame["ts"].astype(np.int64)
    frame["date"] = pd.to_datetime(frame["ts"], unit="ms")
    frame = frame.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
    frame["row"] = np.arange(len(frame), dtype=np.int64)
    return frame
