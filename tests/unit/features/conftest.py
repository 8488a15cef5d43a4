"""Shared fixtures: the bundled real bars and their batch features (computed once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from signalml.config import FeatureSettings
from stream.bars_file import adjust_prices
from stream.features import compute_features

DATA = Path(__file__).resolve().parents[3] / "data" / "sp500_daily_2015_2019.parquet"


@pytest.fixture(scope="session")
def feature_settings() -> FeatureSettings:
    return FeatureSettings()


@pytest.fixture(scope="session")
def real_bars() -> pd.DataFrame:
    return pd.read_parquet(DATA)


@pytest.fixture(scope="session")
def real_features(real_bars, feature_settings) -> pd.DataFrame:
    return compute_features(real_bars, feature_settings)


@pytest.fixture(scope="session")
def applied_bars(real_bars) -> pd.DataFrame:
    """The adjusted bars the engine applies, sorted by (date, symbol): what a
    reference implementation must be fed (first of duplicates, no defects)."""
    bars = adjust_prices(real_bars)[["date", "symbol", "open", "high", "low", "close", "volume"]]
    o, h, lo, c, v = (bars[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    consistent = (
        np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v)
        & (np.minimum(np.minimum(o, h), np.minimum(lo, c)) > 0) & (h >= lo)
        & (c >= lo) & (c <= h) & (o >= lo) & (o <= h) & (v >= 0)
    )
    bars = bars[consistent].drop_duplicates(["date", "symbol"], keep="first")
    return bars.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)


def subset(bars: pd.DataFrame, n_symbols: int, n_dates: int, seed: int = 0) -> pd.DataFrame:
    """A reproducible slice of the real bars: some symbols over the first dates."""
    rng = np.random.default_rng(seed)
    symbols = rng.choice(np.sort(bars["symbol"].unique()), n_symbols, replace=False)
    dates = np.sort(bars["date"].unique())[:n_dates]
    return bars[bars["symbol"].isin(symbols) & bars["date"].isin(dates)].reset_index(drop=True)
