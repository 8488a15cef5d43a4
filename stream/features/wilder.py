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


class WilderCoefficients:
    """``keep`` and ``inverse`` [L, k] (or broadcastable) for periods ``p`` [L]."""

    def __init__(self, periods: tuple[int, ...]):
        self.period = np.asarray(periods, dtype=np.float64)[:, None]
        self.period_minus_1 = self.period - 1.0
        self.inverse_period = 1.0 / self.period
        self.max_period = max(periods)

    def __call__(self, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if seen.min() > self.max_period:
            return self.period_minus_1, self.inverse_period
        s = seen[None, :]
        keep = np.where(s > self.period, self.period_minus_1, 1.0)
        inverse = np.where(s >= self.period, self.inverse_period, 1.0)
        return keep, inverse
