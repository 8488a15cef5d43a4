"""The market regressions: the market return of a bar time does not depend
on the order its bars arrive in, and a bar time's return is final once a
later one begins."""

from __future__ import annotations

import numpy as np
import pytest

from signalml.config import FeatureSettings
from stream.features import FeatureEngine
from stream.features.us_equity.market import market_return

MARKET = FeatureSettings(feature_sets=("us_equity",))
FIELDS = ("open", "high", "low", "close", "volume")


def random_universe(n_symbols=40, n_bars=90, seed=0):
    rng = np.random.default_rng(seed)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_bars, n_symbols)), axis=0))
    bars = {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close,
            "volume": rng.uniform(1e5, 1e6, (n_bars, n_symbols))}
    return [f"S{i:02d}" for i in range(n_symbols)], bars


def test_the_market_return_is_the_same_in_any_order():
    returns = np.random.default_rng(1).normal(0, 0.01, 500)
    expected = market_return(returns)
    for seed in range(20):
        assert market_return(np.random.default_rng(seed).permutation(returns)) == expected
    assert market_return(np.array([0.01, np.nan, 0.03])) == 0.02
    assert np.isnan(market_return(np.array([np.nan])))


def test_bars_arriving_one_by_one_in_any_order_give_the_cross_section_values():
    symbols, bars = random_universe()
    together = FeatureEngine(MARKET)
    one_by_one = FeatureEngine(MARKET)
    rng = np.random.default_rng(2)
    for t in range(len(bars["close"])):
        expected = together.update(t, symbols, *(bars[f][t] for f in FIELDS)).values
        for j in rng.permutation(len(symbols)):
            one_by_one.update_bar(symbols[j], t, *(float(bars[f][t, j]) for f in FIELDS))
        assert np.array_equal(one_by_one.cross_section(t).values, expected, equal_nan=True), t
    market_columns = [together.feature_names.index(n) for n in ("mkt_beta_20", "mkt_beta_60", "idio_vol_20", "idio_vol_60")]
    assert np.isfinite(expected[:, market_columns]).all()


def test_a_late_bar_is_paired_with_the_market_return_its_bar_time_closed_with():
    symbols, bars = random_universe(n_symbols=5, n_bars=45)
    engine = FeatureEngine(MARKET)
    for t in range(30):
        engine.update(t, symbols, *(bars[f][t] for f in FIELDS))
    # Bar time 30: all but S04, then 31 begins (30 closes without it), then S04's bar for 30 arrives late.
    engine.update(30, symbols[:4], *(bars[f][30, :4] for f in FIELDS))
    engine.update(31, symbols[:4], *(bars[f][31, :4] for f in FIELDS))
    assert engine.update(30, symbols[4:], *(bars[f][30, 4:] for f in FIELDS)).accepted.all()
    for t in range(31, 45):  # the last 20-bar window still holds bar time 30
        frame = engine.update(t, symbols[4:] if t == 31 else symbols, *(bars[f][t, 4:] if t == 31 else bars[f][t] for f in FIELDS))
    close = bars["close"]
    returns = close[1:] / close[:-1] - 1  # [t - 1]: return of bar t
    market = returns.mean(axis=1)
    market[29] = returns[29, :4].mean()  # bar time 30 closed without S04
    assert engine._peers.clock.closed_return(30) == market_return(returns[29, :4])
    own, m = returns[-20:, 4], market[-20:]
    expected = np.cov(own, m)[0, 1] / np.var(m, ddof=1)
    assert frame.column("mkt_beta_20")[4] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("window", [20, 60])
def test_beta_of_a_symbol_that_is_twice_the_market_is_two(window):
    """Symbol B's return is twice A's every bar; with A and B alone the
    market is 1.5 A, so B's beta is 2 / 1.5 and its residuals are zero (up to
    the rounding of a sum of squares left over after the fit: its root is
    about sqrt(eps) times the returns' deviation, 1e-10 here)."""
    rng = np.random.default_rng(3)
    a_returns = rng.normal(0, 0.01, window + 5)
    a = 10 * np.cumprod(1 + np.r_[0, a_returns])
    b = 10 * np.cumprod(1 + np.r_[0, 2 * a_returns])
    engine = FeatureEngine(FeatureSettings(feature_sets=(f"mkt_beta_{window}", f"idio_vol_{window}")))
    for t in range(len(a)):
        close = np.array([a[t], b[t]])
        frame = engine.update(t, ["A", "B"], close, close, close, close, [1.0, 1.0])
    beta, idio = frame.values[1]
    assert beta == pytest.approx(2 / 1.5, rel=1e-12)
    assert 0.0 <= idio < 1e-8
