"""RSI with Wilder smoothing, equal to TA-Lib's ``RSI(close, p)``."""

from __future__ import annotations

import math

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Bar, Kernel, Step, maximum
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

    def _update(self, step: Step, bars: Bars, out: np.ndarray) -> None:
        rows = step.rows
        close = bars.close
        change = close - self.prev_close[rows.sel]
        keep, inverse = self._wilder(step)
        if step.least == 0:
            change[step.seen == 0] = 0.0  # a first bar has no change
        gain = np.maximum(change, 0.0)
        loss = np.subtract(gain, change, out=change)  # -change where the close fell, else 0: exact
        avg_gain, avg_loss = rows.pick(self.avg_gain), rows.pick(self.avg_loss)
        for average, x in ((avg_gain, gain), (avg_loss, loss)):
            average *= keep
            average += x
            average *= inverse
        total = avg_gain + avg_loss
        np.divide(avg_gain, total, out=out)
        out *= 100.0
        if not total.min() >= TA_ZERO:
            out[total < TA_ZERO] = 0.0
        if step.least < self._wilder.max_period:
            out[step.seen[None, :] < self._wilder.period] = np.nan
        rows.put_back(self.avg_gain, avg_gain)
        rows.put_back(self.avg_loss, avg_loss)
        self.prev_close[rows.sel] = close
        self.bars_seen[rows.sel] += 1

    def _update_one(self, row: int, seen: int, bar: Bar) -> list[float]:
        close = bar[3]
        change = close - self.prev_close.item(row) if seen else 0.0
        gain = maximum(change, 0.0)
        loss = gain - change
        gains, losses = self.avg_gain[:, row].tolist(), self.avg_loss[:, row].tolist()
        out = []
        for i, (period, keep, inverse) in enumerate(self._wilder.one(seen)):
            gains[i] = avg_gain = (gains[i] * keep + gain) * inverse
            losses[i] = avg_loss = (losses[i] * keep + loss) * inverse
            total = avg_gain + avg_loss
            out.append(math.nan if seen < period else 0.0 if total < TA_ZERO else avg_gain / total * 100.0)
        self.avg_gain[:, row] = gains
        self.avg_loss[:, row] = losses
        self.prev_close[row] = close
        self.bars_seen[row] = seen + 1
        return out
