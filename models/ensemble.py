"""Ensembles: combine member scores of one cross-section into one score.

Input is a score matrix ``scores`` [n, M] (column j = member ``members[j]``)
and optionally ``groups`` [n] (the bar time of each row). Every method works
on one cross-section (one group) at a time with the same function, so the
live engine (one bar time, ``groups=None``) and training (many bar times)
run the same code. NaN (a missing member score) is skipped, not
propagated, wherever a method allows it.

* ``average``: mean of the members' cross-sectional z-scores;
* ``ic_weighted``: weighted mean of z-scores; weights ∝ the members' mean
  per-date rank IC on validation data (negative ICs weigh 0; weights below
  ``min_weight`` after normalising are dropped; all zero → equal weights);
* ``stacking``: ``intercept + Σ coefficient_m · z_m``, a ridge regression
  fit on out-of-fold member scores only (the caller passes those);
* ``rank_vote``: mean of the members' percentile ranks (rank / n, ties
  averaged) within the cross-section (a Borda count);
* ``rank_average`` (the default): the equal-weight mean of the percentile
  ranks of the *selected* members, those whose mean rank IC on the
  out-of-sample history they are fit on is positive (all members when
  none is). A mean of ranks ties often (ranks 10 and 20 average like 20
  and 10); those ties are broken by the selected members' mean z-score,
  and the output is the percentile of that order, so two names tie only
  when their member scores do.

Fitted parameters are plain data (:meth:`Ensemble.params`), so they travel
in the model-set manifest and round-trip with :func:`from_params`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence

import numpy as np

METHODS = ("rank_average", "average", "ic_weighted", "stacking", "rank_vote")
DEFAULT_RIDGE = 1e-3


# ---------------------------------------------------------------- cross-section transforms


def zscore_cross_section(scores: np.ndarray) -> np.ndarray:
    """[k, M] → [k, M]: each column minus its mean over its own cross-section,
    over its population std; NaN stays NaN; a constant column gives 0."""
    scores = np.asarray(scores, dtype=np.float64)
    valid = np.isfinite(scores)
    count = valid.sum(axis=0)
    filled = np.where(valid, scores, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = filled.sum(axis=0) / count
        deviation = np.where(valid, scores - mean, 0.0)
        std = np.sqrt((deviation * deviation).sum(axis=0) / count)
        z = deviation / std
    z[:, ~(std > 1e-12 * np.maximum(np.abs(mean), 1.0))] = 0.0
    z[~valid] = np.nan
    return z


def rank_cross_section(scores: np.ndarray) -> np.ndarray:
    """[k, M] → [k, M]: percentile rank (1..n over the column's finite values,
    ties averaged, divided by n) within the cross-section; NaN stays NaN."""
    scores = np.asarray(scores, dtype=np.float64)
    out = np.full(scores.shape, np.nan)
    for j in range(scores.shape[1]):
        column = scores[:, j]
        valid = np.flatnonzero(np.isfinite(column))
        n = len(valid)
        if n == 0:
            continue
        values = column[valid]
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        new = np.r_[True, ordered[1:] != ordered[:-1]]
        starts = np.flatnonzero(new)
        ends = np.r_[starts[1:], n] - 1
        ranks = np.empty(n)
        ranks[order] = ((starts + ends + 2) / 2.0)[np.cumsum(new) - 1]
        out[valid, j] = ranks / n
    return out


def per_group(transform: Callable[[np.ndarray], np.ndarray], values: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Apply a cross-section ``transform`` [k, M] → [k, ·] to each group."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if groups is None:
        return transform(values)
    groups = np.asarray(groups)
    if len(groups) != len(values):
        raise ValueError(f"{len(groups)} groups for {len(values)} rows")
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    bounds = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1], True])
    result = None
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        rows = order[lo:hi]
        block = transform(values[rows])
        if result is None:
            result = np.full((len(values), block.shape[1]), np.nan)
        result[rows] = block
    return result if result is not None else np.full(values.shape, np.nan)


def mean_rank_ic(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray | None, *, min_names: int = 3) -> np.ndarray:
    """[M]: each member's mean over groups of the Spearman correlation of
    its score with ``labels`` (groups with < ``min_names`` pairs skipped)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1, 1)
    n_members = scores.shape[1]

    def correlations(block: np.ndarray) -> np.ndarray:
        out = np.full((len(block), n_members), np.nan)
        y = block[:, -1]
        for j in range(n_members):
            both = np.isfinite(block[:, j]) & np.isfinite(y)
            if both.sum() < min_names:
                continue
            ranked = rank_cross_section(np.column_stack([block[both, j], y[both]]))
            out[0, j] = _pearson(ranked[:, 0], ranked[:, 1])
        return out

    per_date = per_group(correlations, np.hstack([scores, labels]), groups)
    with np.errstate(all="ignore"):
        means = np.array([np.nanmean(c) if np.isfinite(c).any() else np.nan for c in per_date.T])
    return means


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    denominator = np.sqrt((dx @ dx) * (dy @ dy))
    return float(dx @ dy / denominator) if denominator > 0 else np.nan


# ---------------------------------------------------------------- ensembles


class Ensemble(ABC):
    """A fitted combination of the scores of ``members`` (column order)."""

    method: str = ""

    def __init__(self, members: Sequence[str]):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if len(set(members)) != len(members):
            raise ValueError(f"member names must be distinct, got {list(members)}")
        self.members = tuple(members)

    def combine(self, scores: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray:
        """[n, M] scores (+ the group of each row; None = one cross-section) → [n]."""
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2 or scores.shape[1] != len(self.members):
            raise ValueError(f"scores must be [n, {len(self.members)}] for members {list(self.members)}, got {scores.shape}")
        return per_group(self._combine_cross_section, scores, groups)[:, 0]

    def _refuse_unknown(self, weights: Mapping[str, float]) -> None:
        unknown = set(weights) - set(self.members)
        if unknown:
            raise ValueError(f"weights for unknown member(s) {sorted(unknown)}")

    def combine_members(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
        """One cross-section given as {member: [n] scores}."""
        missing = [m for m in self.members if m not in scores]
        if missing:
            raise KeyError(f"no scores for member(s) {missing}")
        return self.combine(np.column_stack([np.asarray(scores[m], dtype=np.float64) for m in self.members]))

    @abstractmethod
    def _combine_cross_section(self, scores: np.ndarray) -> np.ndarray:
        """[k, M] of one cross-section → [k, 1]."""

    def params(self) -> dict:
        """Plain-data parameters: ``{"method", "members", ...}``."""
        return {"method": self.method, "members": list(self.members)}


class AverageEnsemble(Ensemble):
    method = "average"

    def _combine_cross_section(self, scores):
        return _weighted_mean(zscore_cross_section(scores), np.ones(scores.shape[1]))


class ICWeightedEnsemble(Ensemble):
    method = "ic_weighted"

    def __init__(self, members: Sequence[str], weights: Mapping[str, float]):
        super().__init__(members)
        self._refuse_unknown(weights)
        self.weights = {m: float(weights.get(m, 0.0)) for m in self.members}
        if not any(w > 0 for w in self.weights.values()):
            raise ValueError("ic_weighted ensemble needs at least one positive weight")

    @classmethod
    def fit(cls, members, scores, labels, groups, *, min_weight: float = 0.0) -> "ICWeightedEnsemble":
        """Weights from the members' mean rank IC on (validation) data."""
        return cls(members, ic_weights(members, mean_rank_ic(scores, labels, groups), min_weight=min_weight))

    def _combine_cross_section(self, scores):
        return _weighted_mean(zscore_cross_section(scores), np.array([self.weights[m] for m in self.members]))

    def params(self):
        return {**super().params(), "weights": dict(self.weights)}


def ic_weights(members: Sequence[str], ics: np.ndarray, *, min_weight: float = 0.0) -> dict[str, float]:
    """Normalised weights ∝ max(IC, 0); shares below ``min_weight`` are
    dropped and the rest renormalised; no positive IC → equal weights."""
    raw = np.where(np.isfinite(ics), np.maximum(np.asarray(ics, dtype=np.float64), 0.0), 0.0)
    if raw.sum() <= 0:
        raw = np.ones(len(members))
    weights = raw / raw.sum()
    if min_weight > 0 and (weights >= min_weight).any():
        weights = np.where(weights >= min_weight, weights, 0.0)
        weights = weights / weights.sum()
    return {m: float(w) for m, w in zip(members, weights)}


class StackingEnsemble(Ensemble):
    method = "stacking"

    def __init__(self, members: Sequence[str], intercept: float, coefficients: Mapping[str, float]):
        super().__init__(members)
        self.intercept = float(intercept)
        self.coefficients = {m: float(coefficients.get(m, 0.0)) for m in self.members}

    @classmethod
    def fit(cls, members, oof_scores, labels, groups, *, ridge: float = DEFAULT_RIDGE) -> "StackingEnsemble":
        """Ridge regression of ``labels`` on the per-group z-scores of
        ``oof_scores``: out-of-fold predictions only (the members must not
        have been fit on these rows). ``ridge`` is the L2 penalty per row."""
        z = np.nan_to_num(per_group(zscore_cross_section, oof_scores, groups), nan=0.0)
        y = np.asarray(labels, dtype=np.float64)
        keep = np.isfinite(y)
        z, y = z[keep], y[keep]
        if len(y) == 0:
            raise ValueError("stacking needs at least one labelled out-of-fold row")
        z_mean, y_mean = z.mean(axis=0), y.mean()
        zc, yc = z - z_mean, y - y_mean
        gram = zc.T @ zc + ridge * len(y) * np.eye(z.shape[1])
        coefficients = np.linalg.solve(gram, zc.T @ yc)
        intercept = y_mean - z_mean @ coefficients
        return cls(members, float(intercept), dict(zip(members, coefficients.tolist())))

    def _combine_cross_section(self, scores):
        z = np.nan_to_num(zscore_cross_section(scores), nan=0.0)
        coefficients = np.array([self.coefficients[m] for m in self.members])
        return (self.intercept + z @ coefficients)[:, None]

    def params(self):
        return {**super().params(), "intercept": self.intercept, "coefficients": dict(self.coefficients)}


class RankVoteEnsemble(Ensemble):
    method = "rank_vote"

    def _combine_cross_section(self, scores):
        return _weighted_mean(rank_cross_section(scores), np.ones(scores.shape[1]))


class RankAverageEnsemble(Ensemble):
    method = "rank_average"

    def __init__(self, members: Sequence[str], weights: Mapping[str, float]):
        super().__init__(members)
        self._refuse_unknown(weights)
        selected = [m for m in self.members if float(weights.get(m, 0.0)) > 0]
        if not selected:
            raise ValueError("rank_average ensemble needs at least one selected (positive-weight) member")
        # Equal weights over the selection, whatever magnitudes were given.
        self.weights = {m: (1.0 / len(selected) if m in selected else 0.0) for m in self.members}

    @classmethod
    def fit(cls, members, scores, labels, groups) -> "RankAverageEnsemble":
        """Select the members whose mean per-date rank IC with ``labels``
        on (out-of-sample) ``scores`` is positive; all when none is."""
        return cls(members, rank_average_selection(members, mean_rank_ic(scores, labels, groups)))

    def _combine_cross_section(self, scores):
        weights = np.array([self.weights[m] for m in self.members])
        rank = _weighted_mean(rank_cross_section(scores), weights)[:, 0]
        tie_break = _weighted_mean(zscore_cross_section(scores), weights)[:, 0]
        return ordered_percentile(rank, tie_break)[:, None]

    def params(self):
        return {**super().params(), "weights": dict(self.weights)}


def rank_average_selection(members: Sequence[str], ics: np.ndarray) -> dict[str, float]:
    """{member: 1/k for the k members with a positive IC, else 0}; every
    member equally when none is positive (there is no better choice)."""
    positive = np.isfinite(ics) & (np.asarray(ics, dtype=np.float64) > 0)
    if not positive.any():
        positive = np.ones(len(members), dtype=bool)
    return {m: (1.0 / positive.sum() if keep else 0.0) for m, keep in zip(members, positive)}


def ordered_percentile(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """[k] percentile (1..n over the finite ``primary`` values, divided by
    n) of the lexicographic order (primary, secondary); rows equal in both
    share their average rank; NaN primary stays NaN, NaN secondary ranks
    as equal to any other NaN."""
    primary = np.asarray(primary, dtype=np.float64)
    secondary = np.nan_to_num(np.asarray(secondary, dtype=np.float64), nan=-np.inf)
    out = np.full(len(primary), np.nan)
    valid = np.flatnonzero(np.isfinite(primary))
    n = len(valid)
    if n == 0:
        return out
    p, q = primary[valid], secondary[valid]
    order = np.lexsort((q, p))
    p, q = p[order], q[order]
    new = np.r_[True, (p[1:] != p[:-1]) | (q[1:] != q[:-1])]
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], n] - 1
    ranks = np.empty(n)
    ranks[order] = ((starts + ends + 2) / 2.0)[np.cumsum(new) - 1]
    out[valid] = ranks / n
    return out


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[k, M] → [k, 1]: Σ w·v / Σ w over each row's finite values; NaN
    when no member with positive weight has a value."""
    valid = np.isfinite(values) & (weights > 0)[None, :]
    total = np.where(valid, weights[None, :], 0.0).sum(axis=1)
    weighted = np.where(valid, values * weights[None, :], 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, weighted / total, np.nan)[:, None]


# ---------------------------------------------------------------- construction


def fit_ensemble(
    method: str,
    members: Sequence[str],
    scores: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray | None,
    *,
    min_weight: float = 0.0,
) -> Ensemble:
    """Fit ``method`` on (validation / out-of-fold) ``scores`` [n, M]."""
    if method == "average":
        return AverageEnsemble(members)
    if method == "rank_vote":
        return RankVoteEnsemble(members)
    if method == "rank_average":
        return RankAverageEnsemble.fit(members, scores, labels, groups)
    if method == "ic_weighted":
        return ICWeightedEnsemble.fit(members, scores, labels, groups, min_weight=min_weight)
    if method == "stacking":
        return StackingEnsemble.fit(members, scores, labels, groups)
    raise ValueError(f"unknown ensemble method {method!r}; choose one of {list(METHODS)}")


def from_params(params: Mapping) -> Ensemble:
    """Rebuild an ensemble from :meth:`Ensemble.params`."""
    method, members = params["method"], params["members"]
    if method == "average":
        return AverageEnsemble(members)
    if method == "rank_vote":
        return RankVoteEnsemble(members)
    if method == "rank_average":
        return RankAverageEnsemble(members, params["weights"])
    if method == "ic_weighted":
        return ICWeightedEnsemble(members, params["weights"])
    if method == "stacking":
        return StackingEnsemble(members, params["intercept"], params["coefficients"])
    raise ValueError(f"unknown ensemble method {method!r}; choose one of {list(METHODS)}")


def manifest_entry(served: Ensemble, ic_weighted: ICWeightedEnsemble, stacking: StackingEnsemble | None) -> dict:
    """The model-set manifest's ``ensemble`` object: the method to serve,
    its member weights (the selection of ``rank_average``, else the IC
    weights) and the stacking coefficients (all plain data)."""
    weights = served.weights if isinstance(served, RankAverageEnsemble) else ic_weighted.weights
    entry = {"method": served.method, "weights": dict(weights)}
    if stacking is not None:
        entry["stacking"] = {"intercept": stacking.intercept, "coefficients": dict(stacking.coefficients)}
    return entry


def from_manifest(entry: Mapping, members: Sequence[str]) -> Ensemble:
    """The ensemble a manifest's ``ensemble`` object says to serve."""
    method = entry["method"]
    if method == "ic_weighted":
        return ICWeightedEnsemble(members, entry["weights"])
    if method == "rank_average":
        return RankAverageEnsemble(members, entry["weights"])
    if method == "stacking":
        stacking = entry["stacking"]
        return StackingEnsemble(members, stacking["intercept"], stacking["coefficients"])
    return from_params({"method": method, "members": list(members)})
