"""The naive baseline: short-term reversal.

Score = −(return over the last h bars), h = ``label_horizon_bars`` (5 by
default): last week's losers are expected to outperform next week. It uses
the same accepted, adjusted closes on the same bar clock as the labels, and
is evaluated on the same test windows as the models.
"""

from __future__ import annotations

import numpy as np

from training.labels import backward_returns


def baseline_name(horizon_bars: int) -> str:
    return f"reversal_{horizon_bars}"


def reversal_score(close_grid: np.ndarray, horizon_bars: int) -> np.ndarray:
    """[D, S] −(close[t] / close[t − h] − 1); NaN where either bar is missing."""
    return -backward_returns(close_grid, horizon_bars)
