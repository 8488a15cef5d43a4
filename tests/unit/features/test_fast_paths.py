"""The shortcuts the hot path takes give exactly what the plain definitions
give: the whole-cross-section bar check, window sums in numpy's pairwise
order, ranks without a stable sort or without any sort, ring reads with one
slot for all rows, and the rebuild schedule read from two bar counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stream.features.bars import Bars, all_consistent, bar_defect_codes, consistent
from stream.features.kernel import Step
from stream.features.ranks import BUCKETED_FROM, average_ranks, pct_rank, pct_rank_of, small_int_ranks, sort_order
from stream.features.rows import Rows
from stream.features.window import ALL_ROWS, exact_moments, ring_read, ring_window, rows_to_rebuild, window_sum

BAD = [np.nan, np.inf, -np.inf, 0.0, -1.0, 1e-300]


def random_bars(rng, k):
    low = rng.uniform(1, 100, k)
    high = low * rng.uniform(1.0, 1.1, k)
    close = low + (high - low) * rng.uniform(0, 1, k)
    open_ = low + (high - low) * rng.uniform(0, 1, k)
    return [open_, high, low, close, rng.choice([0.0, 1.0, 1e6], k)]


@pytest.mark.parametrize("seed", range(40))
def test_the_cross_section_check_agrees_with_the_defect_codes(seed):
    rng = np.random.default_rng(seed)
    fields = random_bars(rng, 5)
    if seed % 4:  # a defect somewhere: a bad value, or prices out of order
        field, row = rng.integers(0, 5), rng.integers(0, 5)
        fields[field][row] = rng.choice(BAD) if seed % 3 else fields[field][row] * rng.choice([0.5, 2.0])
    codes = bar_defect_codes(*fields)
    assert all_consistent(Bars.of(*fields)) == (codes == 0).all()
    for row in range(5):
        assert consistent(*(float(f[row]) for f in fields)) == (codes[row] == 0)


@pytest.mark.parametrize("period", [1, 2, 5, 7, 8, 9, 20, 60, 127, 128, 129, 250, 300])
def test_window_sums_are_numpys_row_sums_bit_for_bit(period):
    rng = np.random.default_rng(period)
    window = rng.normal(size=(period, 9)) * rng.lognormal(0, 4, size=(period, 9))
    rows = np.ascontiguousarray(window.T)
    assert np.array_equal(window_sum(window), rows.sum(axis=1))
    mean, m2 = exact_moments(window)
    deviations = rows - (rows.sum(axis=1) / period)[:, None]
    assert np.array_equal(mean, rows.sum(axis=1) / period)
    assert np.array_equal(m2, (deviations * deviations).sum(axis=1))


@pytest.mark.parametrize("seed", range(20))
def test_ranks_equal_pandas_with_ties_and_nan(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    values = rng.integers(0, 6, n).astype(float) if seed % 2 else rng.normal(size=n).round(1)
    values[rng.uniform(size=n) < 0.2] = np.nan
    expected = pd.Series(values).rank(pct=True).to_numpy()
    ranks, ranked = average_ranks(values)
    assert ranked == np.count_nonzero(~np.isnan(values))
    assert np.array_equal(pct_rank(values), expected, equal_nan=True)
    assert np.array_equal(ranks, pd.Series(values).rank().to_numpy(), equal_nan=True)
    if seed % 2:
        assert np.array_equal(small_int_ranks(values, 5)[0], ranks, equal_nan=True)
    one_by_one = [pct_rank_of(v, values) for v in values]
    assert np.array_equal(one_by_one, expected, equal_nan=True)


@pytest.mark.parametrize("kind", ["prices", "signed", "outlier", "ties", "zeros_and_inf", "nan"])
def test_the_bucketed_sort_sorts(kind):
    """Large cross-sections sort by buckets of the bit patterns, then fix the
    order within buckets: the result sorts whatever the spread."""
    rng = np.random.default_rng(1)
    n = BUCKETED_FROM + 1000
    values = {
        "prices": rng.lognormal(4, 1.5, n),
        "signed": rng.normal(0, 1, n) * rng.lognormal(0, 3, n),
        "outlier": np.r_[rng.normal(0, 1, n - 1), 1e300],
        "ties": rng.integers(-3, 4, n).astype(float),
        "zeros_and_inf": rng.choice([-0.0, 0.0, 1.5, -np.inf, np.inf, 5e-324], n),
        "nan": np.where(rng.uniform(size=n) < 0.1, np.nan, rng.normal(size=n)),
    }[kind]
    order = sort_order(values)
    assert np.array_equal(np.sort(order), np.arange(n))
    assert np.array_equal(values[order], np.sort(values), equal_nan=True)
    assert np.array_equal(pct_rank(values), pd.Series(values).rank(pct=True).to_numpy(), equal_nan=True)


def _step(seen, rows, force_unaligned=False):
    rows = Rows.of(rows)
    least, most = int(seen.min()), int(seen.max())
    return Step(rows, seen, least, most + 1 if force_unaligned else most)


@pytest.mark.parametrize("rows", [np.arange(2, 9), np.array([7, 1, 4, 0, 3])])
def test_ring_reads_with_one_slot_equal_per_row_reads(rows):
    """An aligned step reads slices; forced through the per-row path
    (positions, wrapping take) it reads the same values."""
    rng = np.random.default_rng(0)
    ring = rng.normal(size=(6, 10))
    seen = np.full(len(rows), 23)
    aligned, per_row = _step(seen, rows), _step(seen, rows, force_unaligned=True)
    back = np.array([6, 3, 1, 0])
    assert aligned.aligned and not per_row.aligned
    assert np.array_equal(ring_read(ring, aligned, back), ring_read(ring, per_row, back))
    which = np.flatnonzero(rng.uniform(size=len(rows)) < 0.5)
    for select in (ALL_ROWS, which):
        assert np.array_equal(ring_window(ring, aligned, 5, select), ring_window(ring, per_row, 5, select))
    expected = np.array([[ring[(23 - b) % 6, r] for r in rows] for b in back])
    assert np.array_equal(ring_read(ring, aligned, back), expected)


@pytest.mark.parametrize("seed", range(30))
def test_the_rebuild_schedule_equals_the_per_row_rule(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 8))
    seen = rng.integers(0, 60, k) if seed % 3 else np.full(k, int(rng.integers(0, 60)))
    counted, period, cadence = int(rng.integers(0, 2)), int(rng.integers(2, 12)), int(rng.integers(2, 12))
    collapsed = rng.uniform(size=k) < 0.3 if seed % 2 else np.zeros(k, dtype=bool)
    count = seen + counted
    expected = ((count % cadence == 0) | collapsed) & (count >= period)
    step = _step(seen, np.arange(k))
    rebuild = rows_to_rebuild(step, counted, period, cadence, collapsed if collapsed.any() else None)
    if rebuild is None:
        assert not expected.any()
    elif isinstance(rebuild, slice):
        assert expected.all()
    else:
        assert np.array_equal(rebuild, np.flatnonzero(expected))
