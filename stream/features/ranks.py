"""Cross-sectional percentile ranks, NaN-aware, ties averaged (as pandas
``rank(pct=True)``: rank 1..n over the non-NaN values, divided by n).

A tie group spanning sorted positions ``first..last`` (1-based) gets
``(first + last) / 2``, an exact float, so every correct method (and
pandas) yields the same bits.
"""

from __future__ import annotations

import numpy as np


def average_ranks(values: np.ndarray) -> tuple[np.ndarray, int]:
    """1-based ranks of ``values`` [n] with ties averaged, NaN where the value
    is NaN, and the number of ranked (non-NaN) values."""
    values = np.asarray(values, dtype=np.float64)
    nan = np.isnan(values)
    if nan.any():
        ranks = np.full(values.shape, np.nan)
        valid = ~nan
        ranked, n = average_ranks(values[valid])
        ranks[valid] = ranked
        return ranks, n
    n = len(values)
    if n == 0:
        return np.empty(0), 0
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_group[1:])
    starts = np.flatnonzero(new_group)  # 0-based first position of each group
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:] - 1
    ends[-1] = n - 1
    group_rank = (starts + ends + 2) / 2.0
    ranks = np.empty(n)
    ranks[order] = group_rank[np.cumsum(new_group) - 1]
    return ranks, n


def small_int_ranks(values: np.ndarray, largest: int) -> tuple[np.ndarray, int]:
    """:func:`average_ranks` for values in {0, 1, ..., largest} or NaN, in
    O(n) by counting (no sort); same results bit for bit."""
    values = np.asarray(values, dtype=np.float64)
    nan = np.isnan(values)
    codes = np.where(nan, largest + 1, values).astype(np.int64)
    counts = np.bincount(codes, minlength=largest + 2)[: largest + 1]
    before = np.cumsum(counts) - counts  # values ranked below each code
    group_rank = (2 * before + counts + 1) / 2.0  # (first + last) / 2, 1-based
    ranks = group_rank[np.minimum(codes, largest)]
    ranks[nan] = np.nan
    return ranks, int(counts.sum())


def pct_rank(values: np.ndarray) -> np.ndarray:
    """Percentile rank in (0, 1] over the non-NaN values; NaN stays NaN."""
    ranks, n = average_ranks(values)
    return ranks / n if n else ranks


def pct_rank_small_ints(values: np.ndarray, largest: int) -> np.ndarray:
    """:func:`pct_rank` for values in {0, ..., largest} or NaN."""
    ranks, n = small_int_ranks(values, largest)
    return ranks / n if n else ranks
