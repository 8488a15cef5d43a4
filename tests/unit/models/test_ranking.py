"""Per-date helpers: group sizes, relevance grades, rank IC, rank-gauss targets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from models.base import ModelError, group_sizes, mean_rank_ic, rank_ic_by_date, relevance_grades
from models.deep.targets import rank_gauss_by_date


def test_group_sizes_count_consecutive_rows_of_each_date():
    np.testing.assert_array_equal(group_sizes(np.array([3, 3, 3, 5, 9, 9])), [3, 1, 2])


def test_group_sizes_refuse_a_date_split_in_two_runs():
    with pytest.raises(ModelError, match="contiguous"):
        group_sizes(np.array([1, 1, 2, 1]))


@pytest.mark.parametrize("size", [5, 7, 50, 52, 499])
def test_each_grade_holds_floor_or_ceil_of_its_share_of_the_date(size):
    rng = np.random.default_rng(size)
    grades = relevance_grades(rng.standard_normal(size), np.zeros(size, np.int64), 5)
    counts = np.bincount(grades, minlength=5)
    assert counts.sum() == size
    assert set(counts.tolist()) <= {size // 5, -(-size // 5)}


def test_grades_rise_with_the_return_within_each_date():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(4), 50)
    returns = rng.standard_normal(200)
    grades = relevance_grades(returns, groups, 5)
    for date in range(4):
        rows = groups == date
        in_order = grades[rows][np.argsort(returns[rows], kind="stable")]
        assert np.all(np.diff(in_order) >= 0)
        np.testing.assert_array_equal(np.bincount(in_order), [10] * 5)


def test_grades_are_per_date_not_global():
    """A date whose returns are all higher still spans every grade."""
    returns = np.r_[np.arange(10.0), np.arange(10.0) + 100]
    grades = relevance_grades(returns, np.repeat([0, 1], 10), 5)
    np.testing.assert_array_equal(grades[:10], grades[10:])
    np.testing.assert_array_equal(grades[:10], [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])


def test_equal_returns_keep_row_order():
    grades = relevance_grades(np.zeros(6), np.zeros(6, np.int64), 3)
    np.testing.assert_array_equal(grades, [0, 0, 1, 1, 2, 2])


def test_unknown_returns_are_refused():
    with pytest.raises(ModelError, match="finite"):
        relevance_grades(np.array([0.1, np.nan]), np.zeros(2, np.int64), 2)


@settings(max_examples=50, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    n_grades=st.integers(2, 10),
    seed=st.integers(0, 1000),
)
def test_grades_are_quantile_buckets_for_any_dates(sizes, n_grades, seed):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    returns = rng.integers(-3, 4, len(groups)).astype(float)  # many ties
    grades = relevance_grades(returns, groups, n_grades)
    for date, size in enumerate(sizes):
        rows = np.flatnonzero(groups == date)
        order = rows[np.lexsort((rows, returns[rows]))]
        np.testing.assert_array_equal(grades[order], np.arange(size) * n_grades // size)


def test_rank_ic_by_date_matches_scipy_spearman():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(5), 30)
    score = rng.standard_normal(150).round(1)  # ties: average ranks
    returns = score + rng.standard_normal(150)
    expected = [spearmanr(score[groups == d], returns[groups == d]).statistic for d in range(5)]
    np.testing.assert_allclose(rank_ic_by_date(score, returns, groups), expected, atol=1e-12)
    assert mean_rank_ic(score, returns, groups) == pytest.approx(np.mean(expected), abs=1e-12)


def test_rank_ic_leaves_out_unknown_returns_and_scores_a_constant_date_zero():
    groups = np.array([0, 0, 0, 1, 1, 1])
    score = np.array([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    returns = np.array([1.0, np.nan, 3.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(rank_ic_by_date(score, returns, groups), [1.0, 0.0])


def test_rank_gauss_targets_keep_each_dates_order_and_are_centred():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(3), 40)
    y = rng.standard_normal((120, 2)) * [1.0, 100.0]
    y[5, 1] = np.nan
    z = rank_gauss_by_date(y, groups)
    assert z.dtype == np.float32 and np.isnan(z[5, 1]) and np.isfinite(np.delete(z[:, 1], 5)).all()
    for date in range(3):
        rows = groups == date
        for column in range(2):
            known = rows & np.isfinite(y[:, column])
            assert spearmanr(z[known, column], y[known, column]).statistic == pytest.approx(1.0)
            assert abs(z[known, column].mean()) < 1e-6
    # the scale of the returns does not matter, only their order
    np.testing.assert_allclose(rank_gauss_by_date(y * 7.0, groups), z, atol=1e-6)
