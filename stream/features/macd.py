"""MACD over close, equal to TA-Lib's ``MACD(close, fast, slow, signal) / close``.

TA-Lib's lookback is ``(slow - 1) + (signal - 1)``. Both EMAs are seeded
with a simple mean and both start on the slow EMA's first bar: the slow one
from the mean of bars ``0 .. slow-1``, the fast one from the mean of the
``fast`` bars ending there (bars ``slow-fast .. slow-1``), not from bars
``0 .. fast-1``. The signal EMA is seeded with the mean of the first
``signal`` MACD values. EMA steps are ``ema = (x - ema) * k + ema`` with
``k = 2 / (n + 1)``, TA-Lib's operation order.
"""

from __future__ import annotations

import math

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Bar, Kernel, Step, divide


def _ema_step(state, x, k, step: Step, seed_from, seed_at) -> None:
    """One EMA step for every row, in place, with the SMA seed of TA-Lib's
    default mode.

    ``state`` holds the running sum while ``seed_from <= seen < seed_at``, the
    EMA after; ``x`` enters the sum from bar ``seed_from``; at bar ``seed_at``
    the EMA is ``(sum + x) / n``. Rows before ``seed_from`` are unchanged.
    """
    if step.least > seed_at:  # every row past its seed: (x - ema) * k + ema
        change = np.subtract(x, state)
        change *= k
        state += change
        return
    seen = step.seen
    ema = (x - state) * k + state
    n = seed_at - seed_from + 1
    summed = state + x
    # TA-Lib's binary divides by n as a multiplication by 1/n.
    new = np.where(seen > seed_at, ema, np.where(seen == seed_at, summed * (1.0 / n), summed))
    state[...] = np.where(seen < seed_from, state, new)


def _ema_step_one(state: float, x: float, k: float, seen: int, seed_from: int, seed_at: int) -> float:
    """:func:`_ema_step` of one row."""
    if seen > seed_at:
        return (x - state) * k + state
    if seen < seed_from:
        return state
    summed = state + x
    return summed * (1.0 / (seed_at - seed_from + 1)) if seen == seed_at else summed


class MACD(Kernel):
    """``macd``, ``macd_signal``, ``macd_hist``, each divided by the close.
    First values on bar ``slow + signal - 1``."""

    kind = "macd"
    output_names = ("macd", "macd_signal", "macd_hist")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9, capacity: int = 1):
        if not 2 <= fast < slow or signal < 1:
            raise ValueError(f"MACD needs 2 <= fast < slow and signal >= 1, got {fast}, {slow}, {signal}")
        self.fast, self.slow, self.signal = int(fast), int(slow), int(signal)
        first = self.slow + self.signal - 1
        self.warmup_bars = (first, first, first)
        self._k_fast = 2.0 / (self.fast + 1)
        self._k_slow = 2.0 / (self.slow + 1)
        self._k_signal = 2.0 / (self.signal + 1)
        super().__init__(capacity)

    def params(self):
        return {"fast": self.fast, "slow": self.slow, "signal": self.signal}

    def _declare(self):
        return {
            "bars_seen": (np.int64, (), 0),
            "fast_ema": (np.float64, (), 0.0),
            "slow_ema": (np.float64, (), 0.0),
            "signal_ema": (np.float64, (), 0.0),
        }

    def _update(self, step: Step, bars: Bars, out: np.ndarray) -> None:
        rows = step.rows
        close = bars.close
        slow_at = self.slow - 1  # bar of the first EMA values
        signal_at = slow_at + self.signal - 1  # bar of the first signal value
        slow, fast, signal = rows.pick(self.slow_ema), rows.pick(self.fast_ema), rows.pick(self.signal_ema)
        _ema_step(slow, close, self._k_slow, step, 0, slow_at)
        _ema_step(fast, close, self._k_fast, step, self.slow - self.fast, slow_at)
        macd = fast - slow
        _ema_step(signal, macd, self._k_signal, step, slow_at, signal_at)
        np.divide(macd, close, out=out[0])
        np.divide(signal, close, out=out[1])
        np.subtract(macd, signal, out=macd)
        np.divide(macd, close, out=out[2])
        if step.least < signal_at:
            out[:, step.seen < signal_at] = np.nan
        rows.put_back(self.slow_ema, slow)
        rows.put_back(self.fast_ema, fast)
        rows.put_back(self.signal_ema, signal)
        self.bars_seen[rows.sel] += 1

    def _update_one(self, row: int, seen: int, bar: Bar) -> list[float]:
        close = bar[3]
        slow_at = self.slow - 1
        signal_at = slow_at + self.signal - 1
        slow = _ema_step_one(self.slow_ema.item(row), close, self._k_slow, seen, 0, slow_at)
        fast = _ema_step_one(self.fast_ema.item(row), close, self._k_fast, seen, self.slow - self.fast, slow_at)
        macd = fast - slow
        signal = _ema_step_one(self.signal_ema.item(row), macd, self._k_signal, seen, slow_at, signal_at)
        self.slow_ema[row], self.fast_ema[row], self.signal_ema[row] = slow, fast, signal
        self.bars_seen[row] = seen + 1
        if seen < signal_at:
            return [math.nan] * 3
        return [divide(macd, close), divide(signal, close), divide(macd - signal, close)]
