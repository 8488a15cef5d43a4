"""Wilder smoothing as TA-Lib does it, for RSI and ATR.

TA-Lib seeds Wilder's average with the plain mean of the first ``p`` inputs
(its default compatibility mode, unstable period 0), then applies
``avg = (avg * (p - 1) + x) / p``. Those inputs start on a symbol's second
bar (both need the previous close), so with ``s`` bars seen before the
current one:

* ``s < p``:  accumulate, ``sum = sum + x``
* ``s == p``: first value, ``avg = (sum + x) / p``
* ``s > p``:  ``avg = (avg * (p - 1) + x) / p``

All three are ``(state * keep + x) * inverse`` with ``keep`` and ``inverse``
1 where they do not apply: multiplying by 1.0 is exact, so the arithmetic is
TA-Lib's own, operation for operation. TA-Lib's released binary divides by
the period as a multiplication by ``1.0 / p`` (reciprocal math), and so do
we: ``x / p`` differs from it in the last bit about half the time.
"""

from __future__ import annotations

import numpy as np

from stream.features.kernel import PerPeriod


class WilderCoefficients:
    """``keep`` and ``inverse`` [L, k] (or broadcastable) for periods ``p`` [L]."""

    def __init__(self, periods: tuple[int, ...]):
        self.period = np.asarray(periods, dtype=np.float64)[:, None]
        self.period_minus_1 = PerPeriod(self.period - 1.0)
        self.inverse_period = PerPeriod(1.0 / self.period)
        self.max_period = max(periods)
        self._periods = tuple(int(p) for p in periods)
        self._steady_one = tuple((p, p - 1.0, 1.0 / p) for p in self._periods)

    def steady(self, step) -> bool:
        return step.least > self.max_period

    def __call__(self, step) -> tuple[np.ndarray, np.ndarray]:
        """[L, k] for the rows of a :class:`~.kernel.Step` (constants once
        every row is past its seed, ``steady``)."""
        if self.steady(step):
            k = step.rows.size
            return self.period_minus_1.wide(k), self.inverse_period.wide(k)
        s = step.seen[None, :]
        keep = np.where(s > self.period, self.period_minus_1.column, 1.0)
        inverse = np.where(s >= self.period, self.inverse_period.column, 1.0)
        return keep, inverse

    def one(self, seen: int) -> tuple[tuple[int, float, float], ...]:
        """(period, keep, inverse) of each period for one row, as Python floats."""
        if seen > self.max_period:
            return self._steady_one
        return tuple((p, p - 1.0 if seen > p else 1.0, 1.0 / p if seen >= p else 1.0) for p in self._periods)
