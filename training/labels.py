"""Labels: tradable forward returns on the bar clock, and what members fit.

The bar clock is the sorted list of bar times (trading days) at which at
least one bar was applied. A signal is computed at the close of bar ``t``;
the earliest trade it can drive fills at the next close, so the label of
horizon ``h`` with entry lag ``L`` (1 by default) is the return from the
close of ``t + L`` to the close of ``t + L + h``, both closes of the same
symbol on that clock. It is NaN when either bar is missing (the symbol had
no accepted bar there, or the end is past the data), so a label never
silently stretches over a gap, and it ends exactly at bar ``t + L + h``:
that is what purging and the walk-forward gap work with.

Evaluation always scores against that raw return. Members fit its
per-date transform (:func:`fit_target`): the cross-sectional mean removed
(market-neutral), then normal scores or centred ranks, so a market rally
or one name's +80% day does not dominate what a member learns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtri

LABEL_TRANSFORMS = ("normal_score", "rank")


def close_grid(date_index: np.ndarray, symbol_index: np.ndarray, close: np.ndarray, n_dates: int, n_symbols: int) -> np.ndarray:
    """[D, S] closes on the bar clock, NaN where a symbol has no bar."""
    grid = np.full((n_dates, n_symbols), np.nan)
    grid[date_index, symbol_index] = close
    return grid


def forward_returns(grid: np.ndarray, horizon_bars: int, entry_lag_bars: int = 0) -> np.ndarray:
    """[D, S] return from the close of bar t + lag to the close of bar
    t + lag + h."""
    if horizon_bars < 1:
        raise ValueError(f"horizon_bars must be >= 1, got {horizon_bars}")
    if entry_lag_bars < 0:
        raise ValueError(f"entry_lag_bars must be >= 0, got {entry_lag_bars}")
    span = horizon_bars + entry_lag_bars
    out = np.full(grid.shape, np.nan)
    if span < len(grid):
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:-span] = grid[span:] / grid[entry_lag_bars : len(grid) - horizon_bars] - 1.0
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
    rank, count = _ranks(values, groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = np.where(count > 1, (rank - 1.0) / (count - 1.0) - 0.5, 0.0)
    centred[np.isnan(rank)] = np.nan
    return centred


def normal_score_per_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Normal scores within each group: the value of average rank r among
    m known ones gets ``Phi^-1((r - 0.5) / m)`` (mean 0, spread near 1
    whatever the level or tails of the values); NaN stays NaN."""
    rank, count = _ranks(values, groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ndtri((rank - 0.5) / count)


def demean_per_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``values`` less their group's mean over the known values."""
    series = pd.Series(np.asarray(values, dtype=np.float64))
    return (series - series.groupby(np.asarray(groups)).transform("mean")).to_numpy()


def fit_target(returns: np.ndarray, groups: np.ndarray, transform: str) -> np.ndarray:
    """What members fit: the per-date (``groups``) market-neutral return,
    normal-scored or ranked. Ranks do not move when a constant is removed;
    the mean is still removed first so the label is neutral by definition,
    not by the accident of the transform."""
    if transform not in LABEL_TRANSFORMS:
        raise ValueError(f"unknown label transform {transform!r}; known: {list(LABEL_TRANSFORMS)}")
    neutral = demean_per_group(returns, groups)
    if transform == "normal_score":
        return normal_score_per_group(neutral, groups)
    return rank_per_group(neutral, groups)


def _ranks(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    series = pd.Series(np.asarray(values, dtype=np.float64))
    by = series.groupby(np.asarray(groups))
    rank = by.rank(method="average").to_numpy()
    count = by.transform("count").to_numpy().astype(np.float64)
    return rank, count
