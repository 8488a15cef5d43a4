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

import numpy as np

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
    result = np.full(values.shape, np.nan)
    if values.size == 0:
        return result
    valid = ~np.isnan(values)
    count = valid.sum(axis=0)
    with np.errstate(all="ignore"):
        filled = np.where(valid, values, 0.0)
        mean = filled.sum(axis=0) / count
        deviation = np.where(valid, values - mean, 0.0)
        std = np.sqrt((deviation * deviation).sum(axis=0) / count)
        z = np.clip(deviation / std, -clip_z, clip_z)
        # Constant columns (max == min, exact) and single symbols carry no
        # cross-sectional information: 0, not the noise of rounding.
        constant = np.nanmax(np.where(valid, values, -np.inf), axis=0) == np.nanmin(
            np.where(valid, values, np.inf), axis=0
        )
    flat = constant | (count <= 1) | ~np.isfinite(std) | (std == 0)
    z[:, flat] = 0.0
    result[valid] = z[valid]
    return result


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
