"""RSI, ATR, Bollinger position and MACD equal TA-Lib on every symbol of the
bundled data (adjusted OHLC) and every lookback: within 1e-9 relative to
max(1, |value|) wherever TA-Lib has a value, NaN exactly where it has none."""

from __future__ import annotations

import numpy as np
import pytest
import talib

TOLERANCE = 1e-9


def _references(open_, high, low, close, lookbacks, nbdev):
    refs = {}
    for p in lookbacks:
        refs[f"rsi_{p}"] = talib.RSI(close, p)
        refs[f"atr_{p}"] = talib.ATR(high, low, close, p) / close
        upper, _, lower = talib.BBANDS(close, p, nbdev, nbdev)
        width = upper - lower
        with np.errstate(all="ignore"):
            refs[f"bb_position_{p}"] = np.where(width == 0, 0.5, (close - lower) / width)
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    refs["macd"], refs["macd_signal"], refs["macd_hist"] = macd / close, signal / close, hist / close
    return refs


@pytest.fixture(scope="module")
def worst_errors(applied_bars, real_features, feature_settings):
    """Per feature: (largest scaled error, symbol) and the symbols whose NaN
    pattern differs from TA-Lib's."""
    assert feature_settings.macd.model_dump() == {"fast": 12, "slow": 26, "signal": 9}
    features = real_features.set_index(["symbol", "date"]).sort_index()
    worst, nan_mismatch = {}, []
    for symbol, bars in applied_bars.groupby("symbol", sort=True):
        ours = features.loc[symbol].loc[bars["date"].to_numpy()]
        refs = _references(
            *(bars[k].to_numpy() for k in ("open", "high", "low", "close")),
            feature_settings.lookbacks,
            feature_settings.bollinger_nbdev,
        )
        for name, ref in refs.items():
            value = ours[name].to_numpy()
            if not np.array_equal(np.isnan(value), np.isnan(ref)):
                nan_mismatch.append((symbol, name))
            has = ~np.isnan(ref)
            if has.any():
                error = float(np.max(np.abs(value[has] - ref[has]) / np.maximum(1.0, np.abs(ref[has]))))
                if error > worst.get(name, (-1.0, ""))[0]:
                    worst[name] = (error, symbol)
    return worst, nan_mismatch


def test_every_symbol_was_compared(applied_bars, real_features):
    assert applied_bars["symbol"].nunique() == real_features["symbol"].nunique() == 402
    assert len(applied_bars) == len(real_features)


@pytest.mark.parametrize("indicator", ["rsi", "atr", "bb_position", "macd"])
def test_indicator_matches_talib_within_1e_9(worst_errors, feature_settings, indicator):
    worst, _ = worst_errors
    names = ["macd", "macd_signal", "macd_hist"] if indicator == "macd" else [
        f"{indicator}_{p}" for p in feature_settings.lookbacks
    ]
    for name in names:
        error, symbol = worst[name]
        assert error <= TOLERANCE, f"{name}: {error:.3g} on {symbol}"


def test_values_start_exactly_where_talibs_do(worst_errors):
    _, nan_mismatch = worst_errors
    assert nan_mismatch == []


def test_rsi_is_bit_exact(worst_errors, feature_settings):
    """RSI reproduces TA-Lib's binary operation for operation (its divisions
    by the period are multiplications by 1/p)."""
    worst, _ = worst_errors
    assert all(worst[f"rsi_{p}"][0] == 0.0 for p in feature_settings.lookbacks)
