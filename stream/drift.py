"""Population stability index (PSI) against training reference bins, and the
engine's inline feature-drift window.

PSI = Σ (p_live − p_ref) · ln(p_live / p_ref) over the reference bins, with
both shares floored at ``EPSILON`` so an empty bin does not give infinity.
Conventional reading: < 0.1 stable, 0.1–0.25 moderate shift (warning),
> 0.25 significant shift (critical). A column whose PSI already exceeds
that over a window of its own training data (a feature with few distinct
values, a regime-sensitive one) carries higher levels in its reference
bins, calibrated there (:func:`training.drift_reference.calibrate`), so a
stable stream does not raise a standing alarm on it.
"""

from __future__ import annotations

import numpy as np

from signalml.contracts import DriftEvent, ReferenceBins

EPSILON = 1e-4
WARNING_PSI = 0.1
CRITICAL_PSI = 0.25


def bin_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts of the finite ``values`` in the bins of ``edges`` (len k+1 → k
    bins), the first and last bins open-ended."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    n_bins = len(edges) - 1
    index = np.searchsorted(np.asarray(edges[1:-1], dtype=np.float64), values, side="right")
    return np.bincount(index, minlength=n_bins).astype(np.float64)


def psi(reference_fractions: list[float] | np.ndarray, counts: np.ndarray) -> float:
    """PSI of live ``counts`` against the reference shares (NaN with no counts)."""
    total = counts.sum()
    if total <= 0:
        return float("nan")
    expected = np.maximum(np.asarray(reference_fractions, dtype=np.float64), EPSILON)
    actual = np.maximum(counts / total, EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def thresholds(bins: ReferenceBins) -> tuple[float, float]:
    """(warning, critical) PSI levels of a column: the conventional ones, or
    the higher ones its training windows were calibrated to."""
    warning = max(WARNING_PSI, bins.warning_psi or 0.0)
    return warning, max(CRITICAL_PSI, bins.critical_psi or 0.0, warning)


def severity(statistic: float, warning: float = WARNING_PSI, critical: float = CRITICAL_PSI) -> str | None:
    if not np.isfinite(statistic) or statistic < warning:
        return None
    return "critical" if statistic >= critical else "warning"


class FeatureDriftWindow:
    """Accumulates each feature's bin counts over ``window_bars`` cross-sections,
    then emits a ``feature_psi`` event per feature whose PSI reaches the
    warning level, and starts a new window."""

    def __init__(self, reference: dict[str, ReferenceBins], feature_names: list[str], window_bars: int, model_set: str):
        self.model_set = model_set
        self.window_bars = window_bars
        self.columns = [(j, name, reference[name]) for j, name in enumerate(feature_names)
                        if name in reference and len(reference[name].edges) >= 2]
        # Every column's counts are a view into one array, so a cross-section
        # is binned for all columns at once (see _bin_all).
        sizes = [len(bins.edges) - 1 for _, _, bins in self.columns]
        offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        self._all_counts = np.zeros(int(offsets[-1]))
        self.counts = {name: self._all_counts[offsets[i]:offsets[i + 1]] for i, (_, name, _) in enumerate(self.columns)}
        self._offsets = offsets[:-1]
        self._indices = np.array([j for j, _, _ in self.columns], dtype=np.int64)
        inner = [np.asarray(bins.edges[1:-1], dtype=np.float64) for _, _, bins in self.columns]
        width = max((len(e) for e in inner), default=0)
        self._inner = np.full((len(inner), width), np.inf)  # padded with +inf: never <= a finite value
        for i, edges in enumerate(inner):
            self._inner[i, :len(edges)] = edges
        # searchsorted's bin is the count of inner edges <= the value only
        # where the edges are sorted; other reference bins keep it.
        self._sorted = all(bool(np.all(np.diff(e) >= 0)) for e in inner)
        self.bars = 0

    def update(self, ts: int, features: np.ndarray) -> list[DriftEvent]:
        """Add one cross-section's normalised features [n, F]."""
        if self._sorted:
            self._bin_all(features)
        else:
            for j, name, bins in self.columns:
                self.counts[name] += bin_counts(features[:, j], bins.edges)
        self.bars += 1
        if self.bars < self.window_bars:
            return []
        events = []
        for _, name, bins in self.columns:
            statistic = psi(bins.fractions, self.counts[name])
            warning, critical = thresholds(bins)
            level = severity(statistic, warning, critical)
            if level is not None:
                events.append(DriftEvent(ts=ts, kind="feature_psi", subject=name, statistic=statistic,
                                         threshold=critical if level == "critical" else warning,
                                         severity=level, model_set=self.model_set,
                                         detail=f"PSI over the last {self.bars} bar times"))
            self.counts[name][:] = 0
        self.bars = 0
        return events

    def _bin_all(self, features: np.ndarray) -> None:
        """:func:`bin_counts` of every column, in one pass: a value's bin is
        the number of its column's inner edges at or below it (side="right")."""
        if not len(self.columns):
            return
        values = np.asarray(features, dtype=np.float64)[:, self._indices]  # [n, C]
        bins = np.zeros(values.shape, dtype=np.uint8 if self._inner.shape[1] < 255 else np.int64)
        for edge in self._inner.T:  # one comparison of the whole cross-section per edge
            bins += edge <= values
        total = len(self._all_counts)
        flat = self._offsets + bins
        flat[~np.isfinite(values)] = total  # not counted: a bin past the end, dropped below
        self._all_counts += np.bincount(flat.ravel(), minlength=total + 1)[:total]

    def state(self) -> dict:
        return {"version": 1, "model_set": self.model_set, "bars": self.bars,
                "counts": {name: c.tolist() for name, c in self.counts.items()}}

    def restore(self, state: dict) -> None:
        if state.get("version") != 1 or state.get("model_set") != self.model_set:
            return  # another model set's window: start a fresh one
        self.bars = int(state["bars"])
        for name, counts in state["counts"].items():
            if name in self.counts and len(counts) == len(self.counts[name]):
                self.counts[name][:] = counts
