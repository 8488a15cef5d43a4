"""RSI with Wilder smoothing, equal to TA-Lib's ``RSI(close, p)``."""

from __future__ import annotations

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Kernel
from stream.features.rows import Rows
from stream.features.wilder import WilderCoefficients

# TA-Lib's TA_IS_ZERO: average gain + loss this small gives RSI 0, not 0/0.
TA_ZERO = 1e-14


class RSI(Kernel):
    """``rsi_{p}`` for each period: 100 * avg_gain / (avg_gain + avg_loss).

    First value on a symbol's bar ``p + 1`` (TA-Lib's lookback ``p``).
    """

    kind = "rsi"

    def __init__(self, periods: tuple[int, ...] = (14,), capacity: int = 1):
        self.periods = tuple(int(p) for p in periods)
        self.output_names = tuple(f"rsi_{p}" for p in self.periods)
        self.warmup_bars = tuple(p + 1 for p in self.periods)
        self._wilder = WilderCoefficients(self.periods)
        super().__init__(capacity)

    def params(self):
        return {"periods": list(self.periods)}

    def _declare(self):
        n = (len(self.periods),)
        return {
            "bars_seen": (np.int64, (), 0),
            "prev_close": (np.float64, (), np.nan),
            "avg_gain": (np.float64, n, 0.0),
            "avg_loss": (np.float64, n, 0.0),
        }

    def _update(self, rows: Rows, bars: Bars, out: np.ndarray) -> None:
        sel = rows.sel
        close = bars.close
        seen = self.bars_seen[sel]
        change = close - self.prev_close[sel]
        keep, inverse = self._wilder(seen)
        warming = keep is not self._wilder.period_minus_1
        if warming:
            change[seen == 0] = 0.0  # a first bar has no change
        gain = np.maximum(change, 0.0)
        loss = gain - change  # -change where the close fell, else 0: exact
        avg_gain = (self.avg_gain[:, sel] * keep + gain) * inverse
        avg_loss = (self.avg_loss[:, sel] * keep + loss) * inverse
        total = avg_gain + avg_loss
        np.divide(avg_gain, total, out=out)
        out *= 100.0
        out[total < TA_ZERO] = 0.0
        if warming:
            out[seen[None, :] < self._wilder.period] = np.nan
        self.avg_gain[:, sel] = avg_gain
        self.avg_loss[:, sel] = avg_loss
        self.prev_close[sel] = close
        self.bars_seen[sel] = seen + 1
