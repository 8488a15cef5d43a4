"""12-1 momentum and the distance to the 52-week high.

    mom_12_1      = close 21 bars ago / close 252 bars ago - 1
                    (the year's return without its last month, which
                    tends to reverse: Jegadeesh and Titman's convention)
    dist_52w_high = close / max(high over the last 252 bars) - 1, in [-1, 0]
                    (George and Hwang's nearness to the 52-week high)

The high comes from blocks of 252 bars (amortised O(1), see
:mod:`..alpha158.extremes`). Both are ratios of prices of one symbol, so
back-adjusted history and raw live prices agree between corporate actions.
"""

from __future__ import annotations

import math

import numpy as np

from signalml.feature_sets import HIGH_52W_BARS, MOMENTUM_FROM_BARS, MOMENTUM_TO_BARS
from stream.features.alpha158.extremes import block_extreme
from stream.features.jit import jit
from stream.features.jit_kernel import JitKernel
from stream.features.jit_windows import ring_bars


@jit
def _loop(rows, seen, open_, high, low, close, volume, out, out_rows,
          bars_seen, closes, highs, phase, top, top_at, top_suffix, top_suffix_at, from_bars, to_bars, high_bars):
    mask = closes.shape[0] - 1
    high_mask = highs.shape[0] - 1
    for i in range(rows.shape[0]):
        r = rows[i]
        n = seen[i]
        c = close[i]
        closes[n & mask, r] = c
        highs[n & high_mask, r] = high[i]
        p = phase[0, r]
        highest, _ = block_extreme(highs, r, n, high_bars, p, top, top_at, top_suffix, top_suffix_at,
                                   0, 0, top_suffix.shape[0], True)
        phase[0, r] = p + 1 if p + 1 < high_bars else 0
        momentum = math.nan
        if n >= from_bars:
            momentum = closes[(n - to_bars) & mask, r] / closes[(n - from_bars) & mask, r] - 1.0
        distance = math.nan
        if n + 1 >= high_bars:
            distance = c / highest - 1.0
        if out_rows[0] >= 0:
            out[out_rows[0], i] = momentum
        if out_rows[1] >= 0:
            out[out_rows[1], i] = distance
        bars_seen[r] = n + 1


class Momentum(JitKernel):
    """Outputs ``mom_12_1`` (first on bar 253) and ``dist_52w_high`` (bar 252)."""

    kind = "us_equity_momentum"
    _loop = _loop
    output_names = ("mom_12_1", "dist_52w_high")
    warmup_bars = (MOMENTUM_FROM_BARS + 1, HIGH_52W_BARS)

    def params(self):
        return {"bars": [MOMENTUM_FROM_BARS, MOMENTUM_TO_BARS, HIGH_52W_BARS]}

    def _declare(self):
        return {
            "bars_seen": (np.int64, (), 0),
            "closes": (np.float64, (ring_bars(MOMENTUM_FROM_BARS + 1),), np.nan),
            "highs": (np.float64, (ring_bars(HIGH_52W_BARS),), np.nan),
            "phase": (np.int64, (1,), 0),  # see alpha158.extremes.block_extreme
            "top": (np.float64, (1,), np.nan),
            "top_at": (np.int64, (1,), 0),
            "top_suffix": (np.float64, (ring_bars(HIGH_52W_BARS),), np.nan),
            "top_suffix_at": (np.int64, (ring_bars(HIGH_52W_BARS),), 0),
        }

    def _constants(self):
        return MOMENTUM_FROM_BARS, MOMENTUM_TO_BARS, HIGH_52W_BARS
