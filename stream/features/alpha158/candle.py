"""The nine candle shapes (KBAR) and four prices over the close (PRICE) of one bar.

    KMID  = (close - open) / open          KMID2 = (close - open) / (high - low + 1e-12)
    KLEN  = (high - low) / open
    KUP   = (high - max(open, close)) / open      KUP2  = ... / (high - low + 1e-12)
    KLOW  = (min(open, close) - low) / open       KLOW2 = ... / (high - low + 1e-12)
    KSFT  = (2 close - high - low) / open         KSFT2 = ... / (high - low + 1e-12)
    OPEN0 = open / close, HIGH0 = high / close, LOW0 = low / close,
    VWAP0 = vwap / close with the proxy vwap = (high + low + close) / 3

No state beyond the bar count: every value is there from a symbol's first bar.
"""

from __future__ import annotations

import numpy as np

from stream.features.jit import jit
from stream.features.jit_kernel import JitKernel
from signalml.feature_sets import KBAR, PRICE


@jit
def _loop(rows, seen, open_, high, low, close, volume, out, out_rows, bars_seen):
    for i in range(rows.shape[0]):
        o, h, lo, c = open_[i], high[i], low[i], close[i]
        span = h - lo + 1e-12
        upper = h - max(o, c)
        lower = min(o, c) - lo
        shift = 2.0 * c - h - lo
        values = (
            (c - o) / o,
            (h - lo) / o,
            (c - o) / span,
            upper / o,
            upper / span,
            lower / o,
            lower / span,
            shift / o,
            shift / span,
            o / c,
            h / c,
            lo / c,
            ((h + lo + c) / 3.0) / c,
        )
        for k in range(13):
            column = out_rows[k]
            if column >= 0:
                out[column, i] = values[k]
        bars_seen[rows[i]] = seen[i] + 1


class CandleShape(JitKernel):
    """Outputs :data:`~signalml.feature_sets.KBAR` then
    :data:`~signalml.feature_sets.PRICE`; first value on bar 1."""

    kind = "alpha158_candle"
    _loop = _loop
    output_names = KBAR + PRICE
    warmup_bars = (1,) * len(KBAR + PRICE)

    def params(self):
        return {}

    def _declare(self):
        return {"bars_seen": (np.int64, (), 0)}
