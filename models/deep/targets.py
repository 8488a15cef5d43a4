"""What the deep models learn: forward returns ranked within each date.

Raw forward returns are heavy-tailed and their cross-sectional level moves
with the market; only the order within a date matters for a ranking
signal. Each horizon's returns are therefore mapped, date by date, to
normal scores ("rank-gauss"): the row of average rank r among m known
rows gets ``Phi^-1((r - 0.5) / m)``. A date's targets then have mean 0
and nearly unit spread whatever the market did, and MSE on them rewards
getting the order right.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def rank_gauss_by_date(y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """float32 [n, H]: per-date, per-column normal scores of ``y`` [n, H];
    NaN stays NaN (an unknown return is left out of the ranking and of
    the loss)."""
    y = np.asarray(y, dtype=np.float64)
    out = np.full(y.shape, np.nan, dtype=np.float32)
    for column in range(y.shape[1]):
        known = np.isfinite(y[:, column])
        if not known.any():
            continue
        frame = pd.DataFrame({"g": np.asarray(groups)[known], "v": y[known, column]})
        by_date = frame.groupby("g", sort=False)["v"]
        rank = by_date.rank(method="average").to_numpy()
        count = by_date.transform("size").to_numpy(np.float64)
        uniform = torch.from_numpy((rank - 0.5) / count)
        out[known, column] = torch.special.ndtri(uniform).numpy().astype(np.float32)
    return out
