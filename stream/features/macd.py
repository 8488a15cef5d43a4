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

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Kernel
from stream.features.rows import Rows


def _ema_step(state, x, k, seen, seed_from, seed_at):
    """One EMA step for every row, with the SMA seed of TA-Lib's default mode.

    ``state`` holds the running sum while ``seed_from <= seen < seed_at``, the
    EMA after; ``x`` enters the sum from bar ``seed_from``; at bar ``seed_at``
    the EMA is ``(sum + x) / n``. Rows before ``seed_from`` are unchanged.
    """
    ema = (x - state) * k + state
    if seen.min() > seed_at:
        return ema
    n = seed_at - seed_from + 1
    summed = state + x
    # TA-Lib's binary divides by n as a multiplication by 1/n.
    new = np.where(seen > seed_at, ema, np.where(seen == seed_at, summed * (1.0 / n), summed))
    return np.where(seen < seed_from, state, new)


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

    def _update(self, rows: Rows, bars: Bars, out: np.ndarray) -> None:
        sel = rows.sel
        close = bars.close
        seen = self.bars_seen[sel]
        slow_at = self.slow - 1  # bar of the first EMA values
        signal_at = slow_at + self.signal - 1  # bar of the first signal value
        slow = _ema_step(self.slow_ema[sel], close, self._k_slow, seen, 0, slow_at)
        fast = _ema_step(self.fast_ema[sel], close, self._k_fast, seen, self.slow - self.fast, slow_at)
        macd = fast - slow
        signal = _ema_step(self.signal_ema[sel], macd, self._k_signal, seen, slow_at, signal_at)
        np.divide(macd, close, out=out[0])
        np.divide(signal, close, out=out[1])
        np.divide(macd - signal, close, out=out[2])
        if seen.min() < signal_at:
            out[:, seen < signal_at] = np.nan
        self.slow_ema[sel] = slow
        self.fast_ema[sel] = fast
        self.signal_ema[sel] = signal
        self.bars_seen[sel] = seen + 1
