"""Average true range over close, equal to TA-Lib's ``ATR(high, low, close, p) / close``."""

from __future__ import annotations

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Kernel
from stream.features.rows import Rows
from stream.features.wilder import WilderCoefficients


class ATR(Kernel):
    """``atr_{p}``: Wilder-smoothed true range divided by the bar's close,
    a scale-free volatility. First value on bar ``p + 1``."""

    kind = "atr"

    def __init__(self, periods: tuple[int, ...] = (14,), capacity: int = 1):
        self.periods = tuple(int(p) for p in periods)
        self.output_names = tuple(f"atr_{p}" for p in self.periods)
        self.warmup_bars = tuple(p + 1 for p in self.periods)
        self._wilder = WilderCoefficients(self.periods)
        super().__init__(capacity)

    def params(self):
        return {"periods": list(self.periods)}

    def _declare(self):
        return {
            "bars_seen": (np.int64, (), 0),
            "prev_close": (np.float64, (), np.nan),
            "avg_range": (np.float64, (len(self.periods),), 0.0),
        }

    def _update(self, rows: Rows, bars: Bars, out: np.ndarray) -> None:
        sel = rows.sel
        high, low, close = bars.high, bars.low, bars.close
        seen = self.bars_seen[sel]
        prev = self.prev_close[sel]
        # TA-Lib's TRANGE: the largest of high-low, |prev-high|, |low-prev|.
        true_range = np.maximum(np.maximum(high - low, np.abs(prev - high)), np.abs(low - prev))
        keep, inverse = self._wilder(seen)
        warming = keep is not self._wilder.period_minus_1
        if warming:
            true_range[seen == 0] = 0.0  # no previous close yet
        avg_range = (self.avg_range[:, sel] * keep + true_range) * inverse
        np.divide(avg_range, close, out=out)
        if warming:
            out[seen[None, :] < self._wilder.period] = np.nan
        self.avg_range[:, sel] = avg_range
        self.prev_close[sel] = close
        self.bars_seen[sel] = seen + 1
