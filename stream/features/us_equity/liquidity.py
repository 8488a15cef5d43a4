"""Dollar volume: ``log_dollar_volume_20 = ln(1 + mean(close * volume over 20 bars))``.

With volume split-adjusted by the inverse of the price factor (see
:func:`stream.bars_file.adjust_prices`), close * volume is the traded value
in the day's own dollars whichever way the prices are adjusted. The log
(and the 1 that keeps a window of zero volume at 0) makes a liquidity level
that spans orders of magnitude usable as a feature.
"""

from __future__ import annotations

import math

import numpy as np

from signalml.feature_sets import DOLLAR_VOLUME_BARS
from stream.features.jit import COLLAPSE, jit
from stream.features.jit_kernel import JitKernel
from stream.features.jit_windows import CADENCE, ring_bars


@jit
def _loop(rows, seen, open_, high, low, close, volume, out, out_rows,
          bars_seen, traded, total, nonzero, peak, bars):
    mask = traded.shape[0] - 1
    for i in range(rows.shape[0]):
        r = rows[i]
        n = seen[i]
        value = close[i] * volume[i]
        leaving = traded[(n - bars) & mask, r] if n >= bars else 0.0
        traded[n & mask, r] = value
        count = nonzero[r] + (value != 0.0) - (leaving != 0.0)
        summed = total[r] + value - leaving
        top = max(peak[r], summed)
        if (n + 1 >= bars and ((n + 1) & (CADENCE - 1)) == 0) or (count > 0 and summed < COLLAPSE * top):
            summed = 0.0
            for j in range(max(0, n + 1 - bars), n + 1):
                summed += traded[j & mask, r]
            top = summed
        if count == 0:  # exact, not a residue of rounding
            summed = top = 0.0
        total[r], nonzero[r], peak[r] = summed, count, top
        if out_rows[0] >= 0:
            out[out_rows[0], i] = math.log1p(summed / bars) if n + 1 >= bars else math.nan
        bars_seen[r] = n + 1


class DollarVolume(JitKernel):
    """Output ``log_dollar_volume_20``; first value on bar 20."""

    kind = "us_equity_dollar_volume"
    _loop = _loop
    output_names = (f"log_dollar_volume_{DOLLAR_VOLUME_BARS}",)
    warmup_bars = (DOLLAR_VOLUME_BARS,)

    def params(self):
        return {"bars": DOLLAR_VOLUME_BARS}

    def _declare(self):
        return {
            "bars_seen": (np.int64, (), 0),
            "traded": (np.float64, (ring_bars(DOLLAR_VOLUME_BARS + 1),), np.nan),
            "total": (np.float64, (), 0.0),
            "nonzero": (np.int64, (), 0),
            "peak": (np.float64, (), 0.0),
        }

    def _constants(self):
        return (DOLLAR_VOLUME_BARS,)
