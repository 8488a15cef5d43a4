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

from stream.features.jit import jit, jit_inline

CADENCE = 256  # bars between exact rebuilds of a window's running sums (a power of two)


def ring_bars(needed: int) -> int:
    """The smallest power of two holding ``needed`` bars."""
    return 1 << max(0, int(needed) - 1).bit_length()


def rebuild_offsets(n_windows: int):
    """Per window, an offset of its rebuild bar, so that a row's windows
    rebuild on different bars rather than all on one."""
    import numpy as np

    return (np.arange(n_windows, dtype=np.int64) * 97) % CADENCE


# Binary searches without a data-dependent branch: the loop runs log2(length)
# times whatever the values, and each step is a conditional move, so a
# search costs no mispredicted branch (Khuong and Morin's layout study).


@jit_inline
def lower_bound(values, length, x):
    """First position p in the sorted ``values[:length]`` with ``values[p] >= x``."""
    if length == 0:
        return 0
    base = 0
    n = length
    while n > 1:
        half = n >> 1
        base = base + half if values[base + half] < x else base
        n -= half
    return base + (1 if values[base] < x else 0)


@jit_inline
def upper_bound(values, length, x):
    """First position p in the sorted ``values[:length]`` with ``values[p] > x``."""
    if length == 0:
        return 0
    base = 0
    n = length
    while n > 1:
        half = n >> 1
        base = base + half if values[base + half] <= x else base
        n -= half
    return base + (1 if values[base] <= x else 0)


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
