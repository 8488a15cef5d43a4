"""Labels: forward returns on the bar clock, and their cross-sectional ranks.

The bar clock is the sorted list of bar times (trading days) at which at
least one bar was applied. The forward return of horizon ``h`` at bar
``t`` is ``close[t + h] / close[t] - 1``, both closes of the same symbol on
that clock; it is NaN when either bar is missing (the symbol had no
accepted bar there, or ``t + h`` is past the end of the data). So a label
never silently stretches over a gap in a symbol's history, and its end time
is exactly bar ``t + h``: that is what purging works with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def close_grid(date_index: np.ndarray, symbol_index: np.ndarray, close: np.ndarray, n_dates: int, n_symbols: int) -> np.ndarray:
    """[D, S] closes on the bar clock, NaN where a symbol has no bar."""
    grid = np.full((n_dates, n_symbols), np.nan)
    grid[date_index, symbol_index] = close
    return grid


def forward_returns(grid: np.ndarray, horizon_bars: int) -> np.ndarray:
    """[D, S] return from the close of bar t to the close of bar t + h."""
    if horizon_bars < 1:
        raise ValueError(f"horizon_bars must be >= 1, got {horizon_bars}")
    out = np.full(grid.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:-horizon_bars] = grid[horizon_bars:] / grid[:-horizon_bars] - 1.0
    out[~np.isfinite(out)] = np.nan
    return out


def backward_returns(grid: np.ndarray, lookback_bars: int) -> np.ndarray:
    """[D, S] return from the close of bar t - k to the close of bar t."""
    out = np.full(grid.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[lookback_bars:] = grid[lookback_bars:] / grid[:-lookback_bars] - 1.0
    out[~np.isfinite(out)] = np.nan
    return out


def rank_per_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Average-tie rank of ``values`` [n] within each group, mapped linearly
    onto [-0.5, 0.5] (lowest -0.5, highest 0.5, a group of one 0.0); NaN
    stays NaN and does not count."""
    series = pd.Series(np.asarray(values, dtype=np.float64))
    by = series.groupby(np.asarray(groups))
    rank = by.rank(method="average").to_numpy()
    count = by.transform("count").to_numpy().astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = np.where(count > 1, (rank - 1.0) / (count - 1.0) - 0.5, 0.0)
    centred[np.isnan(rank)] = np.nan
    return centred
