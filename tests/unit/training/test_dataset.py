"""The dataset: labels against pandas, no look-ahead in features, defects handled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from training.dataset import build_dataset
from training.sequences import gather_sequences, sequence_panel, sequence_window

from .conftest import small_settings
from .synthetic import synthetic_bars


@pytest.fixture(scope="module")
def bars():
    return synthetic_bars(n_symbols=12, n_days=140, signal=0.5, seed=3)


@pytest.fixture(scope="module")
def dataset(bars):
    return build_dataset(bars, small_settings(), sequence_length=20)


def test_forward_returns_start_at_the_next_close_as_an_independent_pandas_computation(bars, dataset):
    close = bars.pivot(index="date", columns="symbol", values="close")
    frame = dataset.frame()
    assert dataset.entry_lag_bars == 1
    for h in dataset.horizons:
        # enter at the close of t + 1, exit at the close of t + 1 + h
        expected = (close.shift(-(1 + h)) / close.shift(-1) - 1.0).stack().rename("expected")
        joined = frame[[f"fwd_ret_{h}"]].join(expected, how="left")
        np.testing.assert_allclose(joined[f"fwd_ret_{h}"], joined["expected"], rtol=1e-12, equal_nan=True)
        assert joined["expected"].isna().sum() == (h + 1) * close.shape[1]  # the last h + 1 bars have no label


def test_a_label_never_reads_the_close_of_its_own_bar(bars):
    """Move one day's closes: the labels that change are exactly those of
    the bars whose entry (t + 1) or exit (t + 1 + h) is that day."""
    settings = small_settings()
    base = build_dataset(bars, settings, sequence_length=1)
    days = np.sort(bars["date"].unique())
    moved_day = 70
    shocked = bars.copy()
    on_day = shocked["date"] == days[moved_day]
    shocked.loc[on_day, ["open", "high", "low", "close"]] *= 1.05
    changed = build_dataset(shocked, settings, sequence_length=1)
    for j, h in enumerate(base.horizons):
        differs = ~np.isclose(base.returns[:, j], changed.returns[:, j], rtol=1e-12, equal_nan=True)
        assert set(np.unique(base.date_index[differs]).tolist()) == {moved_day - 1, moved_day - 1 - h}


def test_fit_labels_are_per_date_normal_scores_of_the_market_neutral_return(dataset):
    from scipy.stats import norm, rankdata

    for j in range(len(dataset.horizons)):
        expected = np.full(len(dataset), np.nan)
        for day in np.unique(dataset.date_index):
            rows = np.flatnonzero((dataset.date_index == day) & np.isfinite(dataset.returns[:, j]))
            if len(rows) == 0:
                continue
            excess = dataset.returns[rows, j] - dataset.returns[rows, j].mean()
            expected[rows] = norm.ppf((rankdata(excess) - 0.5) / len(rows))
        np.testing.assert_allclose(dataset.labels[:, j], expected, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_rank_labels_are_per_date_ranks_onto_the_unit_interval(bars):
    ranked = build_dataset(bars, small_settings(label_transform="rank"), sequence_length=1)
    frame = pd.DataFrame({"date": ranked.date_index, "r": ranked.returns[:, ranked.target]})
    rank = frame.groupby("date")["r"].rank(method="average")
    count = frame.groupby("date")["r"].transform("count")
    np.testing.assert_allclose(ranked.labels[:, ranked.target], (rank - 1) / (count - 1) - 0.5, equal_nan=True)


def test_every_sample_carries_its_label_end_time(dataset):
    frame = dataset.frame()
    inside = dataset.label_end_index < dataset.n_dates
    np.testing.assert_array_equal(dataset.label_end_index, dataset.date_index + 1 + dataset.horizon_bars)
    np.testing.assert_array_equal(
        frame["label_end"].to_numpy()[inside], dataset.dates[dataset.date_index[inside] + 1 + dataset.horizon_bars]
    )
    assert frame.index.names == ["date", "symbol"]


def test_features_at_t_use_nothing_after_the_close_of_t(bars, dataset):
    cut = bars["date"].unique()[90]
    perturbed = bars.copy()
    later = perturbed["date"] > cut
    rng = np.random.default_rng(7)
    scale = np.exp(rng.normal(0, 0.3, later.sum()))
    for column in ("open", "high", "low", "close"):
        perturbed.loc[later, column] *= scale
    perturbed.loc[later, "volume"] *= rng.uniform(0.1, 10, later.sum())
    changed = build_dataset(perturbed, small_settings(), sequence_length=20)

    upto = dataset.dates[dataset.date_index] <= cut
    np.testing.assert_array_equal(changed.features[upto], dataset.features[upto])
    np.testing.assert_array_equal(changed.reversal[upto], dataset.reversal[upto])
    rows = np.flatnonzero(upto)
    np.testing.assert_array_equal(changed.sequences(rows, 20), dataset.sequences(rows, 20))
    # ... while the labels of those rows do look ahead, by design, and changed.
    assert not np.allclose(changed.returns[upto], dataset.returns[upto], equal_nan=True)
    # and the perturbation did reach the features after the cut
    assert not np.allclose(changed.features[~upto], dataset.features[~upto], equal_nan=True)


def test_real_defects_are_dropped_not_crashed_on():
    bars = synthetic_bars(n_symbols=6, n_days=60, seed=1)
    day = bars["date"].unique()
    zero = (bars.symbol == "S000") & (bars.date == day[30])
    bars.loc[zero, ["open", "high", "low", "close", "volume"]] = 0.0  # all-zero bar
    below = (bars.symbol == "S001") & (bars.date == day[31])
    bars.loc[below, "close"] = bars.loc[below, "low"] * 0.9  # close below low
    bars.loc[(bars.symbol == "S002") & (bars.date == day[10]), "volume"] = 0.0  # zero volume: valid
    bars = pd.concat([bars, bars[(bars.symbol == "S003") & (bars.date == day[20])]])  # duplicated row
    bars = bars[~((bars.symbol == "S004") & (bars.date < day[25]))]  # joins late
    bars = bars[~((bars.symbol == "S005") & (bars.date > day[40]))]  # leaves
    bars.loc[(bars.symbol == "S002") & (bars.date == day[50]), ["open", "high", "low", "close"]] *= 1.8  # +80% day
    bars = bars.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)

    dataset = build_dataset(bars, small_settings(), sequence_length=5)
    frame = dataset.frame()
    assert ("S000" not in frame.loc[day[30]].index) and ("S001" not in frame.loc[day[31]].index)
    assert not frame.index.duplicated().any()
    assert "S002" in frame.loc[day[10]].index
    assert dataset.counts["rejected"]["non_positive_price"] == 1
    # a label never spans a rejected bar: S000's 5-bar label entered on day 25, ending on day 30, is unknown
    assert np.isnan(frame.loc[(day[24], "S000"), "fwd_ret_5"])
    assert np.isnan(frame.loc[(day[29], "S000"), "fwd_ret_5"])  # nor the one entered on day 30
    assert np.isnan(frame.loc[(day[39], "S005"), "fwd_ret_1"])  # left: no bar after its entry
    assert np.isfinite(dataset.features[np.isfinite(dataset.features)]).all()


@hsettings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 9), min_size=1, max_size=5),
    length=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_panel_windows_equal_the_sequence_definition(lengths, length, seed):
    rng = np.random.default_rng(seed)
    symbol_index = np.concatenate([np.full(k, s) for s, k in enumerate(lengths)]).astype(np.int64)
    time_index = np.concatenate([np.sort(rng.choice(50, size=k, replace=False)) for k in lengths]).astype(np.int64)
    order = rng.permutation(len(symbol_index))  # rows in any order
    symbol_index, time_index = symbol_index[order], time_index[order]
    features = rng.standard_normal((len(symbol_index), 3)).astype(np.float32)
    features[rng.random(features.shape) < 0.2] = np.nan
    panel, end_rows = sequence_panel(symbol_index, time_index, features, padding_rows=length - 1)
    windows = gather_sequences(panel, end_rows, length)
    for i in range(len(symbol_index)):
        mine = (symbol_index == symbol_index[i]) & (time_index <= time_index[i])
        history = features[mine][np.argsort(time_index[mine])]
        np.testing.assert_array_equal(windows[i], sequence_window(history, length))


def test_sequence_window_pads_with_zeros_and_replaces_nan():
    history = np.array([[1.0, np.nan], [3.0, 4.0]], dtype=np.float32)
    np.testing.assert_array_equal(sequence_window(history, 3), [[0, 0], [1, 0], [3, 4]])
    np.testing.assert_array_equal(sequence_window(history, 1), [[3, 4]])
    np.testing.assert_array_equal(sequence_window(np.zeros((0, 2)), 2), np.zeros((2, 2)))
