"""Per-row ring buffers stored as ``[ring_bars, capacity]`` arrays, and the
window moments kept over them.

Bar ``j`` of a row lives in slot ``j % ring_bars``. Rings are addressed
through a :class:`~.kernel.Step`: when its rows are aligned (one bar count
for all), a slot is one index for every row and a read is a slice of whole
ring rows; otherwise each row's flat position is computed once per step.
"""

from __future__ import annotations

import numpy as np

from stream.features.kernel import Step


def ring_read(ring: np.ndarray, step: Step, bars_back: np.ndarray) -> np.ndarray:
    """[L, k] (a new array) the value each row of ``step`` wrote
    ``bars_back[i]`` bars before its current bar (bar ``seen - bars_back[i]``)."""
    ring_bars, capacity = ring.shape
    rows = step.rows
    if step.aligned:
        slots = (step.least - bars_back) % ring_bars
        return ring[slots, rows.sel] if rows.contiguous else ring[slots[:, None], rows.sel]
    base = step.ring_base(ring_bars, capacity)
    return ring.reshape(-1).take(base - (bars_back * capacity)[:, None], mode="wrap")


def ring_write(ring: np.ndarray, step: Step, values: np.ndarray) -> None:
    """Store each row's value [k] of its current bar."""
    ring_bars, capacity = ring.shape
    if step.aligned:
        ring[step.least % ring_bars, step.rows.sel] = values
    else:
        ring.reshape(-1)[step.ring_base(ring_bars, capacity)] = values


ALL_ROWS = slice(None)


def ring_window(ring: np.ndarray, step: Step, period: int, which: np.ndarray | slice = ALL_ROWS) -> np.ndarray:
    """[period, m] each row's last ``period`` values up to its current bar's
    (written already), oldest first, of the rows ``which`` selects (positions
    [m] in the step, or all rows)."""
    ring_bars, capacity = ring.shape
    ages = np.arange(period - 1, -1, -1)
    if step.aligned:
        if isinstance(which, slice):
            return ring_read(ring, step, ages)
        return ring[((step.least - ages) % ring_bars)[:, None], step.rows.index[which]]
    seen, index = step.seen[which], step.rows.index[which]
    return ring.reshape(-1).take(((seen[None, :] - ages[:, None]) % ring_bars) * capacity + index[None, :])


def ring_column(ring: np.ndarray, row: int, seen: int, period: int) -> np.ndarray:
    """:func:`ring_window` of one row that has seen ``seen`` bars before its
    current one: [period, 1]."""
    return ring[(seen - np.arange(period - 1, -1, -1)) % ring.shape[0], row][:, None]


def recompute_cadence(period: int, target_bars: int = 256) -> int:
    """Every how many bars a running sum over ``period`` values is rebuilt
    exactly from the window: a multiple of the period near ``target_bars``, so
    rounding drift stays bounded and different periods rarely rebuild on the
    same bar."""
    return period * max(1, target_bars // period)


def rows_to_rebuild(step: Step, counted: int, period: int, cadence: int, collapsed: np.ndarray | None = None):
    """The rows whose window state is rebuilt exactly on this bar: those
    whose count (bars seen, plus ``counted``) is at least ``period`` and a
    multiple of ``cadence`` or, where given, ``collapsed`` (bool [k]; pass
    None rather than all False).

    None when no row is; :data:`ALL_ROWS` when every row is; else the
    positions [m] of those rows in the step. Only the step's least and most
    counts are looked at unless the rows disagree (misaligned rows, a
    collapse).
    """
    least, most = step.least + counted, step.most + counted
    if most // cadence == (least - 1) // cadence or most < period:  # no multiple in least..most
        due = None
    elif step.aligned:
        return ALL_ROWS
    else:
        count = step.seen + counted
        due = (count % cadence == 0) & (count >= period)
    if collapsed is not None:
        due = collapsed if due is None else due | collapsed
        if least < period:
            due = due & (step.seen + counted >= period)
    if due is None:
        return None
    positions = np.flatnonzero(due)
    return positions if len(positions) else None


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
    change = x - leaving
    slid_mean = mean + change / period
    slid_m2 = m2 + change * ((x - slid_mean) + (leaving - mean))
    if filling is None:
        return slid_mean, slid_m2
    delta = x - mean
    added_mean = mean + delta / count
    added_m2 = m2 + delta * (x - added_mean)
    return np.where(filling, added_mean, slid_mean), np.where(filling, added_m2, slid_m2)


def slide_moments_in_place(mean, m2, x, leaving, period) -> None:
    """:func:`slide_moments` of full windows, updating ``mean`` and ``m2`` in
    place with the same operations (hence the same bits)."""
    change = x - leaving
    before = leaving - mean
    after = np.divide(change, period)
    mean += after
    np.subtract(x, mean, out=after)
    after += before
    after *= change
    m2 += after


def window_sum(window: np.ndarray) -> np.ndarray:
    """[m] the sum of each column of ``window`` [p, m], added in the order of
    numpy's pairwise summation of a contiguous row of p values (the row sums
    earlier versions took over a transposed copy, so values stay equal bit
    for bit). A column's sum does not depend on the other columns, and a
    rebuild costs a few column ops instead of a transposed copy and one
    reduction per row (4 ms for 5,000 symbols over 60 bars)."""
    return 0.0 + _pairwise(window, 0, window.shape[0])


def _pairwise(window, start, n):
    """numpy's ``pairwise_sum`` (loops_utils.h.src), a column at a time: a
    plain loop below 8 values, 8 interleaved partial sums up to 128, halves
    (cut at a multiple of 8) above."""
    if n < 8:
        total = window[start] + 0.0
        for i in range(start + 1, start + n):
            total += window[i]
        return total
    if n <= 128:
        partial = window[start : start + 8].copy()
        blocks_end = start + n - n % 8
        for i in range(start + 8, blocks_end, 8):
            partial += window[i : i + 8]
        total = ((partial[0] + partial[1]) + (partial[2] + partial[3])) + (
            (partial[4] + partial[5]) + (partial[6] + partial[7])
        )
        for i in range(blocks_end, start + n):
            total += window[i]
        return total
    half = n // 2
    half -= half % 8
    return _pairwise(window, start, half) + _pairwise(window, start + half, n - half)


def exact_moments(window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-pass mean and sum of squared deviations [m] of each column of ``window`` [p, m]."""
    mean = window_sum(window) / window.shape[0]
    deviations = window - mean
    return mean, window_sum(deviations * deviations)
