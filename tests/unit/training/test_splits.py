"""Splitters: no training label window touches a test window or its embargo."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from signalml.config import load_settings
from signalml.errors import ConfigError
from training.splits import CombinatorialPurgedCV, PurgedKFold, WalkForward, purge_mask
from training.splits.purge import TimeSpan


def panel_index(n_bars: int, n_symbols: int, horizon: int, missing: float = 0.0, seed: int = 0):
    """(time_index, label_end_index) of a panel, label end = t + h."""
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(n_bars), n_symbols)
    keep = rng.random(len(t)) >= missing
    t = t[keep]
    return t, t + horizon


def assert_no_leak(split, time_index, label_end_index, embargo_bars):
    """Each test block spans [first test bar, last test label end + embargo]
    and no training label window [t, e] may touch it."""
    test_t = time_index[split.test]
    for first, last in _blocks(np.unique(test_t)):
        in_block = (test_t >= first) & (test_t <= last)
        span_end = label_end_index[split.test][in_block].max() + embargo_bars
        t, e = time_index[split.train], label_end_index[split.train]
        assert not np.any((t <= span_end) & (e >= first)), f"{split.name}: training label overlaps test block [{first}, {span_end}]"
    assert not set(split.train) & set(split.test)


def _blocks(bars):
    if len(bars) == 0:
        return []
    breaks = np.flatnonzero(np.diff(bars) > 1)
    return list(zip(np.r_[bars[0], bars[breaks + 1]], np.r_[bars[breaks], bars[-1]]))


# ---------------------------------------------------------------- walk-forward


def test_walk_forward_default_layout():
    settings = load_settings(environ={})
    plan = WalkForward.from_settings(settings.training)
    assert plan.window == "expanding" and plan.gap_period == 6  # the label's span: enter at t + 1, hold 5 bars
    folds = plan.folds(1253)
    assert [(f.train_start, f.train_stop, f.test_start, f.test_stop) for f in folds[:2]] == [
        (0, 504, 510, 573),
        (0, 567, 573, 636),
    ]
    assert folds[-1].test_stop == 1253 and len(folds) == 12
    assert all(f.test_start - f.train_stop == 6 for f in folds)
    assert folds[0].validation_start(settings.training.validation_bars) == 504 - 252


def test_folds_of_a_retrain_test_exactly_the_evaluated_bars_and_nothing_before():
    settings = load_settings(environ={})
    plan = WalkForward.from_settings(settings.training)
    folds = plan.folds(1254, tested_bars=252)
    tested = np.concatenate([np.arange(f.test_start, f.test_stop) for f in folds])
    np.testing.assert_array_equal(tested, np.arange(1254 - 252, 1254))  # each evaluated bar tested once, in order
    assert len(folds) == 4
    assert all(f.train_start == 0 and f.test_start - f.train_stop == plan.gap_period for f in folds)
    # The same windows as the full walk-forward's, anchored at the evaluated block.
    assert plan.folds(1254, tested_bars=1254)[0] == plan.folds(1254)[0]


def test_sliding_window_keeps_its_length():
    plan = WalkForward(train_period=100, test_period=20, retrain_frequency=20, gap_period=6, label_span_bars=6, window="sliding")
    folds = plan.folds(200)
    assert [(f.train_start, f.train_stop) for f in folds] == [(0, 100), (20, 120), (40, 140), (60, 160), (80, 180)]


def test_a_gap_shorter_than_the_label_span_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="training.gap_period"):
        WalkForward(train_period=100, test_period=20, retrain_frequency=20, gap_period=5, label_span_bars=6)
    with pytest.raises(ConfigError, match="gap_period .5. is shorter than the label's span"):
        load_settings(environ={}, overrides={"training": {"gap_period": 5}})


def test_the_validation_tail_is_its_configured_length_and_never_the_whole_window():
    fold = WalkForward(train_period=100, test_period=20, retrain_frequency=20, gap_period=6, label_span_bars=6).folds(200)[0]
    assert fold.validation_start(30) == 70
    assert fold.validation_start(500) == 1  # at least one bar is left to fit on


def test_final_window_ends_at_the_last_labelled_bar():
    sliding = WalkForward(train_period=100, test_period=20, retrain_frequency=20, gap_period=6, label_span_bars=6, window="sliding")
    assert (sliding.final_window(300).train_start, sliding.final_window(300).train_stop) == (200, 300)
    expanding = WalkForward(train_period=100, test_period=20, retrain_frequency=20, gap_period=6, label_span_bars=6)
    assert (expanding.final_window(300).train_start, expanding.final_window(300).train_stop) == (0, 300)


@hsettings(max_examples=60, deadline=None)
@given(
    n_bars=st.integers(30, 200),
    horizon=st.integers(1, 10),
    extra_gap=st.integers(0, 5),
    train=st.integers(10, 60),
    test=st.integers(1, 30),
    step=st.integers(1, 30),
    window=st.sampled_from(["sliding", "expanding"]),
)
def test_walk_forward_never_leaks(n_bars, horizon, extra_gap, train, test, step, window):
    plan = WalkForward(
        train_period=train, test_period=test, retrain_frequency=step, gap_period=horizon + extra_gap,
        label_span_bars=horizon, window=window,
    )
    t, e = panel_index(n_bars, 3, horizon, missing=0.1, seed=n_bars)
    for fold, split in zip(plan.folds(n_bars), plan.split(t, e, n_bars)):
        assert fold.test_start - fold.train_stop >= horizon
        assert np.all(e[split.train] < fold.test_start)
        assert np.all((t[split.test] >= fold.test_start) & (t[split.test] < fold.test_stop))
        assert_no_leak(split, t, e, 0)
        if window == "sliding":
            assert fold.train_stop - fold.train_start == train


# ---------------------------------------------------------------- purged k-fold


def test_purged_kfold_hand_example():
    # 10 bars, one sample each, label end t + 2; fold 2 of 5 tests bars 4-5.
    t = np.arange(10)
    splits = list(PurgedKFold(n_splits=5, embargo_bars=1).split(t, t + 2))
    fold = splits[2]
    assert fold.test.tolist() == [4, 5]
    # bars 2, 3 (labels end 4, 5) are purged; 6, 7, 8 fall in [4, 5 + 2 + 1]
    assert fold.train.tolist() == [0, 1, 9]


@hsettings(max_examples=60, deadline=None)
@given(
    n_bars=st.integers(20, 150),
    horizon=st.integers(0, 8),
    folds=st.integers(2, 6),
    embargo=st.integers(0, 6),
)
def test_purged_kfold_never_leaks(n_bars, horizon, folds, embargo):
    t, e = panel_index(n_bars, 2, horizon, missing=0.15, seed=n_bars + horizon)
    splits = list(PurgedKFold(folds, embargo).split(t, e))
    assert len(splits) == folds
    assert sorted(np.concatenate([s.test for s in splits]).tolist()) == list(range(len(t)))
    for split in splits:
        assert_no_leak(split, t, e, embargo)


def test_purging_reads_label_end_times_not_row_counts():
    # Irregular label ends: one sample's label runs far past the others.
    t = np.arange(12)
    e = t + 1
    e[1] = 8  # sample at bar 1 reads the close of bar 8
    split = list(PurgedKFold(n_splits=3, embargo_bars=0).split(t, e))[1]  # tests bars 4..7
    assert 1 not in split.train and 0 in split.train


# ---------------------------------------------------------------- CPCV


def test_cpcv_counts_and_paths():
    cv = CombinatorialPurgedCV(n_groups=6, n_test_groups=2, embargo_bars=2)
    t, e = panel_index(60, 2, 3)
    splits = list(cv.split(t, e))
    assert len(splits) == cv.n_splits == comb(6, 2) == 15
    paths = cv.paths()
    assert len(paths) == cv.n_paths == 5
    for path in paths:
        for group, split_index in enumerate(path):
            assert group in cv.test_group_sets()[split_index]
    # every (group, split) pair where the group is tested is used by exactly one path
    used = sorted((g, s) for path in paths for g, s in enumerate(path))
    assert used == sorted((g, s) for s, groups in enumerate(cv.test_group_sets()) for g in groups)


@hsettings(max_examples=40, deadline=None)
@given(
    n_bars=st.integers(30, 120),
    horizon=st.integers(0, 6),
    groups=st.integers(3, 6),
    k=st.integers(1, 2),
    embargo=st.integers(0, 4),
)
def test_cpcv_never_leaks(n_bars, horizon, groups, k, embargo):
    t, e = panel_index(n_bars, 2, horizon, missing=0.1, seed=n_bars)
    for split in CombinatorialPurgedCV(groups, k, embargo).split(t, e):
        assert_no_leak(split, t, e, embargo)


def test_purge_mask_rejects_labels_that_end_before_they_start():
    with pytest.raises(ValueError):
        purge_mask(np.array([3]), np.array([2]), [TimeSpan(0, 1)])
