"""One implementation: bar-by-bar updates, cross-section updates and runs
interrupted by snapshot/restore (through JSON bytes) all give the batch
output exactly, for the default feature set and for every feature
(Alpha158, US-equity and classic together)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signalml.config import FeatureSettings
from stream.features import FeatureEngine, compute_features, dumps, loads
from tests.unit.features.conftest import subset

FIELDS = ("open", "high", "low", "close", "volume")


EVERY_FEATURE = FeatureSettings(feature_sets=("alpha158", "us_equity", "classic"))


@pytest.fixture(scope="module", params=["default", "every_feature"])
def feature_settings(request):
    return FeatureSettings() if request.param == "default" else EVERY_FEATURE


@pytest.fixture(scope="module")
def small(real_bars):
    """25 symbols over the first 300 dates, with the real defects kept in."""
    bars = subset(real_bars, 25, 300, seed=7)
    return bars


@pytest.fixture(scope="module")
def small_adjusted(small):
    from stream.bars_file import adjust_prices

    return adjust_prices(small).sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)


@pytest.fixture(scope="module")
def batch(small, feature_settings):
    return compute_features(small, feature_settings)


def _ms(date) -> int:
    return int(pd.Timestamp(date).value // 1_000_000)


def _assert_frames_equal(rows: list, batch: pd.DataFrame) -> None:
    values = np.vstack(rows)
    expected = batch.drop(columns=["date", "symbol"]).to_numpy()
    assert values.shape == expected.shape
    assert np.array_equal(values, expected, equal_nan=True)


def test_cross_section_updates_equal_batch(small_adjusted, batch, feature_settings):
    engine = FeatureEngine(feature_settings)
    rows = []
    for date, bars in small_adjusted.groupby("date", sort=True):
        frame = engine.update(_ms(date), bars["symbol"].to_numpy(), *(bars[f].to_numpy() for f in FIELDS))
        rows.append(frame.values[frame.accepted])
    _assert_frames_equal(rows, batch)


def test_bar_by_bar_updates_equal_batch(small_adjusted, batch, feature_settings):
    engine = FeatureEngine(feature_settings)
    rng = np.random.default_rng(3)
    rows = []
    for date, bars in small_adjusted.groupby("date", sort=True):
        ts = _ms(date)
        for i in rng.permutation(len(bars)):  # arrival order within a bar time is arbitrary
            bar = bars.iloc[i]
            engine.update_bar(bar["symbol"], ts, *(bar[f] for f in FIELDS))
        rows.append(engine.cross_section(ts).values)
    _assert_frames_equal(rows, batch)


def test_snapshot_restore_at_random_points_equals_batch(small_adjusted, batch, feature_settings):
    engine = FeatureEngine(feature_settings)
    rng = np.random.default_rng(11)
    groups = list(small_adjusted.groupby("date", sort=True))
    cut_points = set(rng.choice(len(groups), 6, replace=False).tolist())
    rows = []
    for step, (date, bars) in enumerate(groups):
        if step in cut_points:
            engine = FeatureEngine.from_state(loads(dumps(engine.state())))
        frame = engine.update(_ms(date), bars["symbol"].to_numpy(), *(bars[f].to_numpy() for f in FIELDS))
        rows.append(frame.values[frame.accepted])
    _assert_frames_equal(rows, batch)


def test_snapshot_inside_a_bar_time_keeps_the_partial_cross_section(small_adjusted, feature_settings):
    date, bars = next(iter(small_adjusted.groupby("date", sort=True)))
    whole = FeatureEngine(feature_settings)
    whole.update(_ms(date), bars["symbol"].to_numpy(), *(bars[f].to_numpy() for f in FIELDS))
    split = FeatureEngine(feature_settings)
    half = len(bars) // 2
    first, second = bars.iloc[:half], bars.iloc[half:]
    split.update(_ms(date), first["symbol"].to_numpy(), *(first[f].to_numpy() for f in FIELDS))
    split = FeatureEngine.from_state(loads(dumps(split.state())))
    split.update(_ms(date), second["symbol"].to_numpy(), *(second[f].to_numpy() for f in FIELDS))
    a, b = whole.cross_section(_ms(date)), split.cross_section(_ms(date))
    assert list(a.symbols) == list(b.symbols)
    assert np.array_equal(a.values, b.values, equal_nan=True)
