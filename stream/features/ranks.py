"""Cross-sectional percentile ranks, NaN-aware, ties averaged (as pandas
``rank(pct=True)``: rank 1..n over the non-NaN values, divided by n).

A tie group spanning sorted positions ``first..last`` (1-based) gets
``(first + last) / 2``, an exact float, so every correct method (and
pandas) yields the same bits.
"""

from __future__ import annotations

import numpy as np

BUCKETED_FROM = 2048  # values; below, numpy's comparison sort is as fast
_SIGN = np.uint64(1 << 63)


def sort_order(values: np.ndarray) -> np.ndarray:
    """A permutation that sorts float64 ``values`` (NaN last), as
    ``np.argsort``; ties in any order.

    numpy's argsort of floats is a comparison sort (~30 ns a value for a
    few thousand random values here, mostly mispredicted branches); from
    :data:`BUCKETED_FROM` values two passes are 2-3x faster: a stable radix
    argsort of 16-bit buckets of the values' order-preserving bit patterns
    (log-spaced, so outliers do not crowd the rest into a few buckets), then
    a stable sort of the values in bucket order, which is nearly sorted
    already and which timsort runs through.
    """
    if len(values) < BUCKETED_FROM:
        return np.argsort(values)
    bits = values.view(np.uint64)
    key = np.where(bits & _SIGN, ~bits, bits | _SIGN)  # unsigned order = float order
    low = key.min()
    shift = max(0, int(key.max() - low).bit_length() - 16)
    by_bucket = np.argsort(((key - low) >> np.uint64(shift)).astype(np.uint16), kind="stable")
    return by_bucket[np.argsort(values[by_bucket], kind="stable")]


def average_ranks(values: np.ndarray) -> tuple[np.ndarray, int]:
    """1-based ranks of ``values`` [n] with ties averaged, NaN where the value
    is NaN, and the number of ranked (non-NaN) values."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        return np.empty(0), 0
    order = sort_order(values)  # any order of ties gives the same ranks, so the fastest sort
    ordered = values[order]
    if ordered[-1] != ordered[-1]:  # NaN sorts last: rank the others
        valid = ~np.isnan(values)
        ranks = np.full(n, np.nan)
        valid_ranks, ranked = average_ranks(values[valid])
        ranks[valid] = valid_ranks
        return ranks, ranked
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_group[1:])
    ranks = np.empty(n)
    if new_group.all():  # no ties: sorted position + 1
        ranks[order] = np.arange(1.0, n + 1.0)
        return ranks, n
    starts = np.flatnonzero(new_group)  # 0-based first position of each group
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:] - 1
    ends[-1] = n - 1
    group_rank = (starts + ends + 2) / 2.0
    ranks[order] = group_rank[np.cumsum(new_group) - 1]
    return ranks, n


def small_int_ranks(values: np.ndarray, largest: int) -> tuple[np.ndarray, int]:
    """:func:`average_ranks` for values in {0, 1, ..., largest} or NaN, in
    O(n) by counting (no sort); same results bit for bit."""
    codes = np.fmin(np.asarray(values, dtype=np.float64), largest + 1).astype(np.int64)  # NaN: largest + 1
    group_rank, below = [], 0
    for count in np.bincount(codes, minlength=largest + 2)[: largest + 1].tolist():
        group_rank.append((2 * below + count + 1) / 2.0)  # (first + last) / 2, 1-based
        below += count
    group_rank.append(np.nan)
    return np.array(group_rank)[codes], below


def pct_rank(values: np.ndarray) -> np.ndarray:
    """Percentile rank in (0, 1] over the non-NaN values; NaN stays NaN."""
    ranks, n = average_ranks(values)
    return ranks / n if n else ranks


def pct_rank_small_ints(values: np.ndarray, largest: int) -> np.ndarray:
    """:func:`pct_rank` for values in {0, ..., largest} or NaN."""
    ranks, n = small_int_ranks(values, largest)
    return ranks / n if n else ranks


def pct_rank_of(value: float, values: np.ndarray) -> float:
    """:func:`pct_rank` of one of ``values`` (``value`` is among them), by
    counting in O(n) rather than sorting: the same bits, since a tie group's
    rank ``(2 * below + ties + 1) / 2`` is the same exact float."""
    if value != value:
        return np.nan
    below = int(np.count_nonzero(values < value))
    ties = int(np.count_nonzero(values == value))
    ranked = int(np.count_nonzero(values == values))  # not NaN
    return (2 * below + ties + 1) / 2.0 / ranked
