"""Helpers for per-row ring buffers stored as ``[ring_bars, capacity]`` arrays.

Bar ``j`` of a row lives in slot ``j % ring_bars``; with ``seen`` bars
written, the last ``n`` are bars ``seen-n .. seen-1``.
"""

from __future__ import annotations

import numpy as np


def last_values(ring: np.ndarray, rows: np.ndarray, seen: np.ndarray, n: int) -> np.ndarray:
    """[k, n] the last ``n`` values of each row, oldest first (C-contiguous,
    so a row's ``sum(axis=1)`` does not depend on how many rows there are)."""
    ring_bars, capacity = ring.shape
    bars = seen[:, None] - n + np.arange(n)[None, :]
    return ring.reshape(-1).take((bars % ring_bars) * capacity + rows[:, None])


def recompute_cadence(period: int, target_bars: int = 256) -> int:
    """Every how many bars a running sum over ``period`` values is rebuilt
    exactly from the window: a multiple of the period near ``target_bars``, so
    rounding drift stays bounded and different periods rarely rebuild on the
    same bar."""
    return period * max(1, target_bars // period)


# Between two rebuilds (at most `recompute_cadence` <= 256 steps apart) each
# add-and-drop step adds rounding of a few ulp of the largest m2 seen since
# the last rebuild (the "peak"), so m2's absolute error stays below about
# 256 * 2 * 4 * eps * peak = 4.5e-13 * peak. Rebuilding whenever m2 falls
# below COLLAPSE * peak keeps its relative error under 1e-10 (a Bollinger
# position within ~1e-10), at the cost of one comparison per step.
COLLAPSE = 5e-3


def slide_moments(mean, m2, x, leaving, period, count=None, filling=None):
    """Mean and sum of squared deviations (m2) of a window after ``x`` enters.

    Once full, Welford's add-and-drop form swaps ``leaving`` for ``x``; while
    filling (where ``filling`` is true) the plain Welford add with ``count``
    values after the add. Both avoid the cancellation of a running sum of
    squares, but not this: m2's absolute error stays the size of the largest
    m2 since the last rebuild, so when volatility collapses its relative
    error grows; callers rebuild then (see :data:`COLLAPSE`).
    """
    step = x - leaving
    slid_mean = mean + step / period
    slid_m2 = m2 + step * ((x - slid_mean) + (leaving - mean))
    if filling is None:
        return slid_mean, slid_m2
    delta = x - mean
    added_mean = mean + delta / count
    added_m2 = m2 + delta * (x - added_mean)
    return np.where(filling, added_mean, slid_mean), np.where(filling, added_m2, slid_m2)


def exact_moments(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-pass mean and sum of squared deviations of each row of ``window``."""
    mean = window.sum(axis=1) / window.shape[1]
    deviations = window - mean[:, None]
    return mean, (deviations * deviations).sum(axis=1)
