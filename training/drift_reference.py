"""Reference distributions for drift monitoring (PSI), as plain data.

Each feature or score gets decile bins of its training-time values:
``edges`` are the 0, 10, …, 100th percentiles (11 values, fewer when ties
merge bins) and ``fractions`` the share of reference values in each bin
(``len(edges) - 1`` values summing to 1; the last bin includes its right
edge). When live values are binned, the first and last bins should be
treated as open-ended. Features are the normalised ones the models read.
"""

from __future__ import annotations

import numpy as np

N_BINS = 10


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
