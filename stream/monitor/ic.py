"""Rank IC of one cross-section: Spearman correlation of scores and the
forward returns that matured (average ranks for ties), as
:func:`training.metrics.daily_metrics` computes it per date."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def rank_ic(scores: np.ndarray, returns: np.ndarray, min_names: int = 5) -> float:
    """NaN with fewer than ``min_names`` finite pairs or a constant side."""
    scores = np.asarray(scores, dtype=np.float64)
    returns = np.asarray(returns, dtype=np.float64)
    valid = np.isfinite(scores) & np.isfinite(returns)
    if valid.sum() < min_names:
        return float("nan")
    x = rankdata(scores[valid]) - (valid.sum() + 1) / 2.0
    y = rankdata(returns[valid]) - (valid.sum() + 1) / 2.0
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator > 0 else float("nan")
