"""alpha_1, alpha_42 and alpha_101 against a straightforward pandas
implementation of the paper's formulas, on the real data: exact equality.

    alpha_1   = rank(Ts_ArgMax(SignedPower((returns < 0 ? stddev(returns, 20) : close), 2), 5)) - 0.5
    alpha_42  = rank((vwap - close) / (vwap + close)),  vwap := (high + low + close) / 3
                (the paper's rank(vwap - close) / rank(vwap + close) with the
                price level divided out per symbol, so it is scale-free)
    alpha_101 = (close - open) / ((high - low) + 0.001)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


def paper_alphas(bars: pd.DataFrame) -> pd.DataFrame:
    """The formulas with pandas, one symbol's history and one date's
    cross-section at a time (bars sorted by symbol then date)."""
    by_symbol = bars.groupby("symbol", sort=False)
    returns = bars["close"] / by_symbol["close"].shift(1) - 1
    stddev = returns.groupby(bars["symbol"], sort=False).transform(lambda r: r.rolling(20).std())
    inner = pd.Series(np.where(returns < 0, stddev, bars["close"]), index=bars.index).where(stddev.notna())
    signed_power = np.sign(inner) * inner.abs() ** 2
    argmax = pd.Series(np.nan, index=bars.index)
    for _, index in by_symbol.indices.items():
        values = signed_power.to_numpy()[index]
        if len(values) >= 5:
            windows = np.lib.stride_tricks.sliding_window_view(values, 5)
            position = np.argmax(windows, axis=1) + 1.0  # 1-based, oldest first, first max
            position[np.isnan(windows).any(axis=1)] = np.nan
            argmax.iloc[index[4:]] = position
    vwap = (bars["high"] + bars["low"] + bars["close"]) / 3
    by_date = bars["date"]
    return pd.DataFrame(
        {
            "alpha_1": argmax.groupby(by_date).rank(pct=True) - 0.5,
            "alpha_42": ((vwap - bars["close"]) / (vwap + bars["close"])).groupby(by_date).rank(pct=True),
            "alpha_101": (bars["close"] - bars["open"]) / ((bars["high"] - bars["low"]) + 0.001),
        }
    )


@pytest.fixture(scope="module")
def both(applied_bars, real_features):
    bars = applied_bars.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    ours = real_features.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    return paper_alphas(bars), ours


@pytest.mark.parametrize("alpha", ["alpha_1", "alpha_42", "alpha_101"])
def test_alpha_equals_the_pandas_formula_exactly(both, alpha):
    reference, ours = both
    np.testing.assert_array_equal(ours[alpha].to_numpy(), reference[alpha].to_numpy())


def test_alpha_1_exists_from_a_symbols_25th_bar(both):
    _, ours = both
    position = ours.groupby("symbol").cumcount()
    assert ours.loc[position < 24, "alpha_1"].isna().all()
    assert ours.loc[position >= 24, "alpha_1"].notna().all()


def test_alpha_ranks_use_only_the_same_bar_time(feature_settings):
    from stream.features import FeatureEngine

    engine = FeatureEngine(feature_settings)
    frame = engine.update(1, ["A", "B"], [10, 10], [12, 11], [9, 9], [11, 10], [1, 1])
    # (vwap - close) / (vwap + close): A -0.33 / 21.67, B 0 / 20; ranks 0.5, 1.0
    np.testing.assert_allclose(frame.column("alpha_42"), [0.5, 1.0])
    later = engine.update(2, ["A"], [10], [12], [9], [11], [1])
    assert later.column("alpha_42")[0] == 1.0  # a one-symbol cross-section


def test_alpha_42_does_not_depend_on_a_symbols_price_scale(feature_settings):
    """A symbol whose history is back-adjusted (all prices times a factor)
    ranks where its raw prices would: alpha_42 compares ratios, not levels."""
    from stream.features import FeatureEngine

    bars = dict(open=[10, 50], high=[12, 52], low=[9, 49], close=[11, 50], volume=[1, 1])
    raw = FeatureEngine(feature_settings).update(1, ["A", "B"], **bars)
    scaled = {k: [v[0] * (0.37 if k != "volume" else 1), v[1]] for k, v in bars.items()}
    adjusted = FeatureEngine(feature_settings).update(1, ["A", "B"], **scaled)
    assert raw.column("alpha_42").tolist() == adjusted.column("alpha_42").tolist()
