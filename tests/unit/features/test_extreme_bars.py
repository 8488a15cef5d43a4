"""Bars at the edges of what the bar contract admits (prices from MIN_PRICE to
MAX_PRICE, jumps between them, volumes from 0 to MAX_VOLUME) keep every
feature finite: the validator's bounds are what stands between a price of
1e308 and an overflowing feature state."""

import numpy as np
from hypothesis import given, settings as hypothesis_settings, strategies as st

from signalml.config import FeatureSettings
from signalml.contracts import MAX_PRICE, MAX_VOLUME, MIN_PRICE
from stream.decode import bar_problem
from stream.features import FeatureEngine

EVERY_FEATURE = FeatureSettings(feature_sets=("classic", "alpha158", "us_equity"))

prices = st.one_of(st.sampled_from([MIN_PRICE, MAX_PRICE, 1.0]),
                   st.floats(MIN_PRICE, MAX_PRICE, allow_nan=False, allow_infinity=False))
volumes = st.one_of(st.sampled_from([0.0, MAX_VOLUME, 1.0]), st.floats(0.0, MAX_VOLUME))


@st.composite
def extreme_bar(draw):
    low, high = sorted((draw(prices), draw(prices)))
    span = high - low
    fractions = st.floats(0.0, 1.0)
    close = min(high, max(low, low + draw(fractions) * span))
    open_ = min(high, max(low, low + draw(fractions) * span))
    return open_, high, low, close, draw(volumes)


@hypothesis_settings(max_examples=15, deadline=None)
@given(st.lists(st.lists(extreme_bar(), min_size=3, max_size=3), min_size=70, max_size=260))
def test_every_feature_stays_finite_at_the_edges_of_the_bar_contract(rows):
    engine = FeatureEngine(EVERY_FEATURE)
    symbols = np.array(["A", "B", "C"])
    for t, bars in enumerate(rows):
        assert all(bar_problem(*bar) is None for bar in bars)  # each bar is one the validator accepts
        columns = np.array(bars, dtype=np.float64).T
        frame = engine.update(1_000 + t, symbols, *columns)
        assert frame.accepted.all()
        assert not np.isinf(frame.values).any(), [name for name, bad in zip(
            engine.feature_names, np.isinf(frame.values).any(axis=0)) if bad]
    # Once warm, a value is a number, never NaN from an overflow (the
    # features that are undefined on a flat window may still be NaN, so
    # only check that something beyond warm-up is finite).
    assert np.isfinite(frame.values).any()


def test_volume_ratio_of_volumes_whose_mean_underflows_is_finite():
    """A subnormal volume after zero volumes: its window's mean underflows to
    0 although a volume is non-zero. The ratio is volume / sum * p (here p),
    the same on the cross-section path and the one-bar path."""
    settings = FeatureSettings(feature_sets=("classic",))
    columns = [name.startswith("volume_ratio_") for name in FeatureEngine(settings).feature_names]
    periods = [int(name.rsplit("_", 1)[1]) for name in FeatureEngine(settings).feature_names if name.startswith("volume_ratio_")]
    volumes = [0.0] * 70 + [5e-324]
    many, one = FeatureEngine(settings), FeatureEngine(settings)
    for t, volume in enumerate(volumes):
        frame = many.update(1_000 + t, np.array(["A", "B"]), [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [volume, volume])
        single = one.update_bar("A", 1_000 + t, 1.0, 1.0, 1.0, 1.0, volume)
    assert frame.values[0, columns].tolist() == [float(p) for p in periods]
    assert single[columns].tolist() == [float(p) for p in periods]
