"""Average true range over close, equal to TA-Lib's ``ATR(high, low, close, p) / close``."""

from __future__ import annotations

import math

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Bar, Kernel, Step, divide, maximum
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

    def _update(self, step: Step, bars: Bars, out: np.ndarray) -> None:
        rows = step.rows
        high, low, close = bars.high, bars.low, bars.close
        prev = self.prev_close[rows.sel]
        # TA-Lib's TRANGE: the largest of high-low, |prev-high|, |low-prev|.
        true_range = high - low
        gap = np.subtract(prev, high)
        np.maximum(true_range, np.abs(gap, out=gap), out=true_range)
        np.subtract(low, prev, out=gap)
        np.maximum(true_range, np.abs(gap, out=gap), out=true_range)
        keep, inverse = self._wilder(step)
        if step.least == 0:
            true_range[step.seen == 0] = 0.0  # no previous close yet
        avg_range = rows.pick(self.avg_range)
        avg_range *= keep
        avg_range += true_range
        avg_range *= inverse
        np.divide(avg_range, step.wide(close, len(self.periods)), out=out)
        if step.least < self._wilder.max_period:
            out[step.seen[None, :] < self._wilder.period] = np.nan
        rows.put_back(self.avg_range, avg_range)
        self.prev_close[rows.sel] = close
        self.bars_seen[rows.sel] += 1

    def _update_one(self, row: int, seen: int, bar: Bar) -> list[float]:
        _, high, low, close, _ = bar
        if seen:
            prev = self.prev_close.item(row)
            true_range = maximum(maximum(high - low, abs(prev - high)), abs(low - prev))
        else:
            true_range = 0.0
        ranges = self.avg_range[:, row].tolist()
        out = []
        for i, (period, keep, inverse) in enumerate(self._wilder.one(seen)):
            ranges[i] = avg_range = (ranges[i] * keep + true_range) * inverse
            out.append(math.nan if seen < period else divide(avg_range, close))
        self.avg_range[:, row] = ranges
        self.prev_close[row] = close
        self.bars_seen[row] = seen + 1
        return out
