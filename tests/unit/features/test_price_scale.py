"""Features built from ratios: a symbol's history multiplied by a constant
(back-adjusted prices, with the volume divided by the same factor) gives the
values its raw prices give. This is what lets back-adjusted training history
and a live feed of raw prices meet.

The factors are powers of two, so that scaling is exact in floating point:
any difference then comes from a feature depending on the price level, not
from rounding (a factor like 0.37 perturbs each input by an ulp, which flips
ranks at exact ties). Two features keep a documented dependence on the
units: Qlib's CORR, through the 1 of Log(volume + 1) (large where volume is
small), and alpha_101, through the paper's 0.001 in (high - low) + 0.001.
"""

from __future__ import annotations

import numpy as np
import pytest

from signalml.config import FeatureSettings
from stream.features import compute_features
from tests.unit.features.conftest import subset

EVERY_FEATURE = FeatureSettings(feature_sets=("alpha158", "us_equity", "classic"))
UNIT_DEPENDENT = ("CORR5", "CORR10", "CORR20", "CORR30", "CORR60", "alpha_101")


@pytest.fixture(scope="module")
def raw_and_scaled(applied_bars):
    bars = subset(applied_bars, 30, 400, seed=3)
    symbols = np.sort(bars["symbol"].unique())
    factor = dict(zip(symbols, 2.0 ** np.random.default_rng(1).integers(-6, 7, len(symbols))))
    scaled = bars.copy()
    f = scaled["symbol"].map(factor).to_numpy()
    for column in ("open", "high", "low", "close"):
        scaled[column] = scaled[column] * f
    scaled["volume"] = scaled["volume"] / f
    return compute_features(bars, EVERY_FEATURE, adjust=False), compute_features(scaled, EVERY_FEATURE, adjust=False)


def test_every_feature_is_the_same_whatever_each_symbols_price_scale(raw_and_scaled):
    raw, scaled = raw_and_scaled
    assert list(raw.columns) == list(scaled.columns)
    exact = 0
    for name in raw.columns[2:]:
        if name in UNIT_DEPENDENT:
            continue
        a, b = raw[name].to_numpy(), scaled[name].to_numpy()
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        has = ~np.isnan(a)
        # Relative 1e-9 (values within 1e-4 of zero: 1e-13 absolute): what is
        # left is Qlib's 1e-12 in denominators and TA-Lib's zero threshold.
        off = np.abs(a[has] - b[has]) > 1e-9 * np.maximum(np.abs(a[has]), 1e-4)
        assert not off.any(), (name, a[has][off][:3], b[has][off][:3])
        exact += np.array_equal(a, b, equal_nan=True)
    assert exact > 120  # most of the 189 are equal bit for bit
