"""Compiled helpers the Alpha158 and US-equity loops share.

Rings: a row's value of bar ``j`` lives in slot ``j & (ring_bars - 1)`` of a
``[ring_bars, capacity]`` array, ``ring_bars`` a power of two (a mask costs
a cycle where an integer modulo costs tens, on every ring access).

Anchored sums: a window's moments are kept as sums of ``x - anchor``, the
anchor being a recent value of the row, which keeps the sums small where
prices sit far from zero; the sums are rebuilt exactly from the ring every
:data:`CADENCE` bars, and whenever the second moment about the mean falls below
:data:`~.jit.COLLAPSE` of the largest sum of squares since the last rebuild
(then their rounding would no longer be small beside it).
"""

from __future__ import annotations

from stream.features.jit import jit_inline

CADENCE = 256  # bars between exact rebuilds of a window's running sums (a power of two)


def ring_bars(needed: int) -> int:
    """The smallest power of two holding ``needed`` bars."""
    return 1 << max(0, int(needed) - 1).bit_length()


def rebuild_offsets(windows):
    """Per window (length in bars), an offset of its rebuild bar, so that a
    row's windows rebuild on different bars rather than all on one. It
    depends on the window's length only, so a feature's values do not
    depend on which other windows are selected."""
    import numpy as np

    return (np.asarray(windows, dtype=np.int64) * 97) % CADENCE


@jit_inline
def row_at(rows, first, i):
    """The state row of the i-th bar of an update: ``first + i`` when the rows
    are one contiguous range starting at ``first`` (then the compiler sees
    consecutive rows and the loop streams through memory), else ``rows[i]``."""
    return first + i if first >= 0 else rows[i]


@jit_inline
def window_sums(ring, row, last, bars, anchor):
    """Sum and sum of squares of ``x - anchor`` over bars ``last - bars + 1
    .. last`` of a ring, oldest first."""
    mask = ring.shape[0] - 1
    s1 = 0.0
    s2 = 0.0
    for j in range(last - bars + 1, last + 1):
        x = ring[j & mask, row] - anchor
        s1 += x
        s2 += x * x
    return s1, s2


@jit_inline
def rebuild_due(count, period, offset):
    """Whether the bar that brings a window's count of values to ``count``
    rebuilds its sums: the first full window, then every :data:`CADENCE`
    bars (shifted by the window's ``offset``)."""
    return count == period or ((count + offset) & (CADENCE - 1)) == 0
