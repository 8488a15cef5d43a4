"""QTLU, QTLD and RANK: order statistics of the close over ``d`` bars.

    QTLU{d} = Quantile(close, d, 0.8) / close
    QTLD{d} = Quantile(close, d, 0.2) / close
    RANK{d} = percentile of the close among the window's closes, ties
              averaged: (below + (equal + 1) / 2) / d, in (0, 1]

Quantiles interpolate linearly between order statistics as pandas does:
position ``q (d - 1)``, the lower value plus the fraction of the gap to the
next (the lower value alone at a whole position).

Each window keeps its closes sorted, in one row's contiguous slots. A bar
replaces the leaving close by the new one: their places come from counting
the smaller values (a pass of compares without a branch, which the compiler
vectorises) and the values between the two places move by one slot. That is
O(d) work per bar, not the O(log d) of a balanced tree or skip list, on
purpose: for d <= 60 a pass over a few cache lines beats both, and beats a
binary search too, whose data-dependent branches mispredict about half the
time (measured: 2-3x slower here). The order statistics are then read in
O(1); counts are integers, so the rank is exact.
"""

from __future__ import annotations

import math

import numpy as np

from stream.features.jit import jit, jit_inline
from stream.features.jit_kernel import JitKernel
from stream.features.kernel import ROWS_FIRST
from stream.features.jit_windows import ring_bars

OPERATORS = ("QTLU", "QTLD", "RANK")
QUANTILES = (0.8, 0.2)


@jit_inline
def count_below(values, length, x):
    """How many of ``values[:length]`` are below ``x``: one pass of compares
    without a branch, which the compiler vectorises."""
    below = 0
    for j in range(length):
        below += values[j] < x
    return below


@jit_inline
def sorted_replace(values, length, leaving, entering):
    """In the sorted ``values[:length]``, replace one copy of ``leaving`` by
    ``entering`` keeping the order; returns the position of ``entering``, the
    first of its equals."""
    p = count_below(values, length, leaving)  # the first copy of leaving
    q = count_below(values, length, entering) - (leaving < entering)  # its place once leaving is out
    if q > p:  # shift the values between down one slot
        for j in range(p, q):
            values[j] = values[j + 1]
    else:
        for j in range(p, q, -1):
            values[j] = values[j - 1]
    values[q] = entering
    return q


@jit_inline
def sorted_insert(values, length, entering):
    """Insert ``entering`` into the sorted ``values[:length]`` (one free slot
    after it); returns its position, the first of its equals."""
    q = count_below(values, length, entering)
    for j in range(length, q, -1):
        values[j] = values[j - 1]
    values[q] = entering
    return q


@jit_inline
def interpolated(values, length, quantile):
    """pandas' linear quantile of the sorted ``values[:length]``."""
    position = quantile * (length - 1)
    below = int(position)
    low = values[below]
    if position == below:
        return low
    return low + (values[below + 1] - low) * (position - below)


@jit
def _loop(rows, seen, open_, high, low, close, volume, out, out_rows,
          bars_seen, closes, ordered, windows, quantiles):
    mask = closes.shape[0] - 1
    n_windows = windows.shape[0]
    nan = math.nan
    for w in range(n_windows):  # window by window: each pass walks a few arrays row after row
        d = windows[w]
        sorted_closes = ordered[w]
        columns = (out_rows[w], out_rows[n_windows + w], out_rows[2 * n_windows + w])
        for i in range(rows.shape[0]):
            r = rows[i]
            n = seen[i]
            c = close[i]
            window = sorted_closes[r]  # this row's sorted closes, contiguous
            if n < d:
                below = sorted_insert(window, n, c)
            else:
                below = sorted_replace(window, d, closes[(n - d) & mask, r], c)
            values = (nan, nan, nan)
            if n + 1 >= d:
                equal = 0
                for j in range(d):
                    equal += window[j] == c
                values = (
                    interpolated(window, d, quantiles[0]) / c,
                    interpolated(window, d, quantiles[1]) / c,
                    (below + (equal + 1) * 0.5) / d,
                )
            for k in range(3):
                if columns[k] >= 0:
                    out[columns[k], i] = values[k]
    for i in range(rows.shape[0]):
        closes[seen[i] & mask, rows[i]] = close[i]  # after the windows read the leaving close from this slot
        bars_seen[rows[i]] = seen[i] + 1


class OrderStats(JitKernel):
    """Outputs ``{op}{d}`` for op in :data:`OPERATORS` (that order), each over
    ``windows``; first value on bar ``d``."""

    kind = "alpha158_order_stats"
    _loop = _loop
    operators = OPERATORS

    def __init__(self, windows=(5, 10, 20, 30, 60), capacity: int = 1):
        self.windows = tuple(sorted(int(d) for d in windows))
        self.output_names = tuple(f"{op}{d}" for op in OPERATORS for d in self.windows)
        self.warmup_bars = tuple(d for _ in OPERATORS for d in self.windows)
        self._windows = np.asarray(self.windows, dtype=np.int64)
        self._quantiles = np.asarray(QUANTILES)
        super().__init__(capacity)

    def params(self):
        return {"windows": list(self.windows)}

    def _declare(self):
        # One array per window, [capacity, d], so that a pass over the rows
        # for one window reads its sorted windows one after the other.
        return {
            "bars_seen": (np.int64, (), 0),
            "closes": (np.float64, (ring_bars(max(self.windows)),), np.nan),
            **{f"ordered_{d}": (np.float64, (d,), np.nan, ROWS_FIRST) for d in self.windows},
        }

    def _state_arguments(self):
        return self.bars_seen, self.closes, tuple(getattr(self, f"ordered_{d}") for d in self.windows)

    def _constants(self):
        return self._windows, self._quantiles
