"""Reference distributions for drift monitoring (PSI), as plain data.

Each feature or score gets decile bins of its training-time values:
``edges`` are the 0, 10, …, 100th percentiles (11 values, fewer when ties
merge bins) and ``fractions`` the share of reference values in each bin
(``len(edges) - 1`` values summing to 1; the last bin includes its right
edge). When live values are binned, the first and last bins should be
treated as open-ended. Features are the normalised ones the models read.

:func:`calibrate` then measures each column's PSI over every monitoring
window of its training rows (``serving.psi_window_bars`` bar times, the
live window) against those bins. Where the highest of them reaches the
conventional warning level (0.1), that column's ``warning_psi`` is set
10% above it and ``critical_psi`` to 2.5 times that (the conventional
ratio): the training data itself moves that much from window to window, so
a live window doing the same is no drift. Under a stable process a live
window then exceeds the warning level about as often as a new window would
beat every one of the N training windows, about 1 in N + 1. Columns that
stay below 0.1 keep the conventional levels.
"""

from __future__ import annotations

import numpy as np

from stream.drift import CRITICAL_PSI, WARNING_PSI, bin_counts, psi

N_BINS = 10
MARGIN = 1.1  # calibrated warning level: this much above the highest training window


def reference_bins(values: np.ndarray, n_bins: int = N_BINS) -> dict[str, list[float]]:
    """``{"edges": [...], "fractions": [...]}`` of the finite ``values``."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"edges": [], "fractions": []}
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1)))
    if len(edges) == 1:
        return {"edges": [float(edges[0]), float(edges[0])], "fractions": [1.0]}
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": [float(e) for e in edges], "fractions": [float(c) for c in counts / counts.sum()]}


def drift_reference(features: np.ndarray, feature_names, scores: dict[str, np.ndarray]) -> dict[str, dict[str, list[float]]]:
    """Bins of every feature column and of every member's scores
    (keyed ``score:<member>``)."""
    reference = {name: reference_bins(features[:, j]) for j, name in enumerate(feature_names)}
    for member, values in scores.items():
        reference[f"score:{member}"] = reference_bins(values)
    return reference


def window_psis(values: np.ndarray, windows: np.ndarray, bins: dict[str, list[float]]) -> np.ndarray:
    """PSI against ``bins`` of the rows of each window (``windows``: the
    window number of every row, -1 for rows of no full window)."""
    values = np.asarray(values, dtype=np.float64)
    out = []
    for window in np.unique(windows[windows >= 0]):
        counts = bin_counts(values[windows == window], bins["edges"])
        if counts.sum() > 0:
            out.append(psi(bins["fractions"], counts))
    return np.asarray(out, dtype=np.float64)


def calibrate(reference: dict[str, dict], columns: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, dict]:
    """``reference`` with ``warning_psi`` / ``critical_psi`` added to the
    columns whose training windows already move past the warning level.
    ``columns``: name -> (values, window number of each value)."""
    out = {}
    for name, bins in reference.items():
        bins = dict(bins)
        if name in columns and len(bins.get("edges", [])) >= 2:
            values, windows = columns[name]
            psis = window_psis(values, windows, bins)
            highest = float(psis.max()) if len(psis) else 0.0
            if highest >= WARNING_PSI:
                bins["warning_psi"] = MARGIN * highest
                bins["critical_psi"] = max(CRITICAL_PSI, 2.5 * MARGIN * highest)
        out[name] = bins
    return out


def full_windows(date_index: np.ndarray, window_bars: int) -> np.ndarray:
    """Window number of each row, counting ``window_bars`` distinct bar
    times per window from the first; rows of a last, incomplete window get
    -1 (:func:`window_psis` leaves them out: it would not be a full window)."""
    dates = np.unique(date_index)
    windows = (np.searchsorted(dates, date_index) // window_bars).astype(np.int64)
    complete = len(dates) // window_bars
    windows[windows >= complete] = -1
    return windows
