"""Every Alpha158 and US-equity feature of the streaming engine equals the
independent batch reference (:mod:`.batch_reference`) on the bundled data:
every symbol, every bar.

* Where the reference has no value (the warm-up), the engine has none, and
  the other way round.
* Discrete operators (argmax positions, counts, ranks) are equal exactly.
* Every other value is within 1e-9 of the reference relative to
  ``max(|reference|, 1e-4)``: relative 1e-9, except that a value within
  1e-4 of zero (a slope, residual or correlation that is essentially zero,
  whose last digits are cancellation in any implementation, the
  reference's included) is held to 1e-13 absolute. Every feature's natural
  scale is above 1e-4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signalml.config import FeatureSettings
from signalml.feature_sets import US_EQUITY, alpha158_names
from stream.features import compute_features
from tests.unit.features import batch_reference

RELATIVE = 1e-9
FLOOR = 1e-4
DISCRETE = ("IMAX", "IMIN", "IMXD", "CNTP", "CNTN", "CNTD", "RANK")
SETTINGS = FeatureSettings(feature_sets=("alpha158", "us_equity"))


def close_enough(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per value: within the tolerance of the module docstring."""
    return np.abs(ours - reference) <= RELATIVE * np.maximum(np.abs(reference), FLOOR)


def assert_matches(name: str, ours: np.ndarray, reference: np.ndarray) -> None:
    missing = np.isnan(ours) != np.isnan(reference)
    assert not missing.any(), f"{name}: {missing.sum()} values where only one side has a value"
    has = ~np.isnan(reference)
    if name.rstrip("0123456789") in DISCRETE:
        np.testing.assert_array_equal(ours[has], reference[has], err_msg=name)
    else:
        bad = ~close_enough(ours[has], reference[has])
        assert not bad.any(), (
            f"{name}: {bad.sum()} values off, worst {ours[has][bad][:3]} vs {reference[has][bad][:3]}"
        )


def aligned(bars: pd.DataFrame, features: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """The reference of ``bars`` (applied bars) and ``features`` in its row order."""
    panel = batch_reference.Panel(bars)
    reference = {**batch_reference.alpha158(panel), **batch_reference.us_equity(panel)}
    ours = features.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    assert (ours["date"].to_numpy() == panel.bars["date"].to_numpy()).all()
    assert (ours["symbol"].to_numpy() == panel.bars["symbol"].to_numpy()).all()
    return reference, ours


@pytest.fixture(scope="module")
def real(real_bars, applied_bars):
    return aligned(applied_bars, compute_features(real_bars, SETTINGS))


NAMES = (*alpha158_names(), *US_EQUITY)


def test_the_selection_is_every_alpha158_and_us_equity_feature():
    assert len(alpha158_names()) == 158
    assert compute_features.__module__  # imported
    from stream.features import feature_names

    assert feature_names(SETTINGS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_streaming_equals_the_batch_reference_on_the_bundled_data(real, name):
    reference, ours = real
    assert_matches(name, ours[name].to_numpy(), reference[name])


def test_every_feature_has_values_after_its_warm_up(real):
    reference, ours = real
    for name in NAMES:
        assert np.isfinite(ours[name].to_numpy()).mean() > 0.5, name


# ---------------------------------------------------------------- awkward input


def awkward_bars() -> pd.DataFrame:
    """Bars that stress the definitions: a symbol joining late and one
    leaving early, one with gaps, a stretch of constant prices and zero
    volume, very small and very large prices, volume that jumps from zero,
    and a date with a single symbol."""
    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2020-01-01", periods=330)
    rows = []
    for k, (symbol, scale) in enumerate((("AAA", 1.0), ("TINY", 1e-4), ("HUGE", 1e5), ("FLAT", 10.0), ("GAPS", 3.0))):
        close = scale * np.exp(np.cumsum(rng.normal(0, 0.02, len(dates))))
        volume = np.round(rng.lognormal(10, 1, len(dates)))
        if symbol == "FLAT":
            close[60:140] = close[60]  # constant prices ...
            volume[80:100] = 0.0  # ... and no trading inside them
            volume[200:203] = 0.0
        for t, date in enumerate(dates):
            if symbol == "AAA" and t < 40:
                continue  # joins late
            if symbol == "TINY" and t > 290:
                continue  # leaves
            if symbol == "GAPS" and (t % 17 == 3 or 100 <= t < 110):
                continue  # misses bars
            if t == 150 and symbol != "HUGE":
                continue  # one date with one symbol
            c = close[t]
            spread = 0.0 if symbol == "FLAT" and 60 <= t < 140 else abs(rng.normal(0, 0.01)) * c
            high, low = c + spread, c - spread * 0.7
            rows.append((date, symbol, low + (high - low) * rng.uniform(), high, low, c, volume[t]))
    return pd.DataFrame(rows, columns=["date", "symbol", "open", "high", "low", "close", "volume"])


@pytest.fixture(scope="module")
def awkward():
    bars = awkward_bars()
    return aligned(bars, compute_features(bars, SETTINGS))


@pytest.mark.parametrize("name", NAMES)
def test_streaming_equals_the_batch_reference_on_awkward_bars(awkward, name):
    reference, ours = awkward
    assert_matches(name, ours[name].to_numpy(), reference[name])


def test_constant_prices_give_the_defined_values(awkward):
    """Inside the constant stretch: no deviation, no slope, no R² (0 / 0),
    no correlation, no gains or losses."""
    _, ours = awkward
    flat = ours[ours["symbol"] == "FLAT"].reset_index(drop=True)
    inside = flat.iloc[130]  # 70 bars into the stretch: every window is constant
    for d in (5, 10, 20, 30, 60):
        assert inside[f"STD{d}"] == 0.0 and inside[f"BETA{d}"] == 0.0 and inside[f"RESI{d}"] == 0.0
        assert inside[f"MA{d}"] == 1.0 and inside[f"ROC{d}"] == 1.0
        assert np.isnan(inside[f"RSQR{d}"]) and np.isnan(inside[f"CORR{d}"])
        assert inside[f"SUMP{d}"] == 0.0 and inside[f"CNTP{d}"] == 0.0 and inside[f"CNTD{d}"] == 0.0
        assert inside[f"QTLU{d}"] == 1.0 and inside[f"RANK{d}"] == (d + 1) / 2 / d
    assert inside["KMID2"] == 0.0 and inside["RSV5"] == 0.0


def test_a_one_symbol_cross_section_is_its_own_market():
    """With one symbol, the market return is its own: beta exactly 1, no
    idiosyncratic volatility."""
    bars = awkward_bars()
    alone = bars[bars["symbol"] == "HUGE"]
    features = compute_features(alone, SETTINGS)
    last = features.iloc[-1]
    assert last["mkt_beta_20"] == 1.0 and last["mkt_beta_60"] == 1.0
    assert last["idio_vol_20"] == 0.0 and last["idio_vol_60"] == 0.0
