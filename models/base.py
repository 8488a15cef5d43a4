"""The contract between the training pipeline and every model ("member").

A member learns one score per row from either a tabular cross-section
(:class:`TabularData`, the GBMs) or per-symbol feature sequences
(:class:`SequenceData`, the deep models), is saved in its native,
non-pickle format and is loaded back from exactly those files. The
training pipeline only talks to :class:`Member`; Triton serves the files.

The helpers at the bottom work on date groups ("queries"): group sizes,
per-date relevance grades and per-date Spearman rank IC.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

# OpenMP threads (torch, LightGBM, XGBoost) spin while they wait for each
# other; on a 2-core machine shared with other work (Kafka, Triton, a test
# run) a spinning thread takes the core its partner needs, and a fit ran
# 4-10x slower than with sleeping threads. Each OpenMP runtime reads this
# once, when it is loaded, so it must be set before torch / lightgbm /
# xgboost are imported; a value set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from signalml import jsonio  # noqa: E402
from signalml.errors import SignalMLError  # noqa: E402


class ModelError(SignalMLError):
    """A model cannot be built, fitted, saved or loaded (the message says which and why)."""


# ---------------------------------------------------------------- data


@dataclass(frozen=True, eq=False)
class TabularData:
    """One row per (date, symbol), rows sorted by date.

    ``X`` float32 [n, F]: cross-sectionally normalised features, NaN allowed.
    ``y`` float64 [n, H]: forward returns (or their per-date ranks), one
    column per horizon in ``horizons``; NaN where unknown.
    ``groups`` int64 [n]: date index; one date's rows are contiguous.
    ``target``: the column of ``y`` (index into ``horizons``) to learn.
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    horizons: tuple[int, ...]
    target: int

    def __post_init__(self) -> None:
        _check_targets(len(self.X), self.y, self.groups, self.horizons, self.target)
        if self.X.ndim != 2:
            raise ModelError(f"TabularData.X must be [n, F], got shape {self.X.shape}")

    def __len__(self) -> int:
        return len(self.X)

    @property
    def target_returns(self) -> np.ndarray:
        """float64 [n]: the column of ``y`` that is learnt."""
        return self.y[:, self.target]


@dataclass(frozen=True, eq=False)
class SequenceData:
    """Sequences of the last ``length`` (T) feature rows of each sample's symbol.

    ``panel`` float32 [R, F]: each symbol's rows contiguous in time order,
    preceded by at least T-1 zero rows; NaN already replaced by 0.
    ``end_rows`` int64 [n]: sample i is ``panel[end_rows[i]-T+1 : end_rows[i]+1]``.
    ``y``, ``groups``, ``horizons``, ``target`` as in :class:`TabularData`.
    """

    panel: np.ndarray
    end_rows: np.ndarray
    length: int
    y: np.ndarray
    groups: np.ndarray
    horizons: tuple[int, ...]
    target: int

    def __post_init__(self) -> None:
        _check_targets(len(self.end_rows), self.y, self.groups, self.horizons, self.target)
        if self.panel.ndim != 2:
            raise ModelError(f"SequenceData.panel must be [R, F], got shape {self.panel.shape}")
        if self.length < 1:
            raise ModelError(f"SequenceData.length must be >= 1, got {self.length}")
        if len(self.end_rows) and (self.end_rows.min() < self.length - 1 or self.end_rows.max() >= len(self.panel)):
            raise ModelError("SequenceData.end_rows point outside the panel (or into its leading padding)")

    def __len__(self) -> int:
        return len(self.end_rows)

    @property
    def n_features(self) -> int:
        return int(self.panel.shape[1])

    @property
    def target_returns(self) -> np.ndarray:
        return self.y[:, self.target]

    def window_rows(self, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """int64 [len, T]: panel row of every step of the selected samples."""
        ends = self.end_rows if idx is None else self.end_rows[idx]
        return ends[:, None] + np.arange(1 - self.length, 1, dtype=np.int64)[None, :]

    def materialize(self, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """float32 [len, T, F]: the selected samples' sequences, oldest step first."""
        return self.panel[self.window_rows(idx)]


def _check_targets(n: int, y: np.ndarray, groups: np.ndarray, horizons: tuple[int, ...], target: int) -> None:
    if y.ndim != 2 or y.shape != (n, len(horizons)):
        raise ModelError(f"y must be [n={n}, H={len(horizons)}], got shape {y.shape}")
    if groups.shape != (n,):
        raise ModelError(f"groups must be [n={n}], got shape {groups.shape}")
    if not 0 <= target < len(horizons):
        raise ModelError(f"target {target} is not a column of horizons {list(horizons)}")


# ---------------------------------------------------------------- member


class Member(ABC):
    """One model of the ensemble.

    Subclasses set ``kind`` ("lightgbm" | "xgboost" | "lstm" | "tft") and
    ``input`` ("tabular" | "sequence"); instances carry ``name``,
    ``n_features`` and ``feature_names`` (set by the caller, used by
    :meth:`importance` and written beside the model).
    """

    kind: ClassVar[str]
    input: ClassVar[str]

    def __init__(self, n_features: int, *, name: str | None = None, feature_names: list[str] | None = None):
        if n_features < 1:
            raise ModelError(f"{type(self).__name__}: n_features must be >= 1, got {n_features}")
        self.n_features = int(n_features)
        self.name = name or self.kind
        self.feature_names = list(feature_names) if feature_names is not None else None

    @abstractmethod
    def fit(self, train, valid) -> dict:
        """Fit on ``train``, early-stopping on ``valid``; returns a small
        JSON-able report (best iteration or epoch, the validation metric,
        ``valid_rank_ic``, ``seconds``)."""

    @abstractmethod
    def predict(self, data) -> np.ndarray:
        """float64 [n]: score of the target horizon, higher = better expected rank."""

    @abstractmethod
    def save(self, directory: Path) -> dict[str, str]:
        """Write native files into ``directory``; returns {role: relative path}."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, files: dict[str, str]) -> "Member":
        """The member saved by :meth:`save` (``files`` is what it returned)."""

    def warm_start_from(self, previous: "Member") -> None:
        """Reuse ``previous`` (the last walk-forward window's fitted member)
        in the next :meth:`fit`. Default: nothing is reused."""
        return None

    def importance(self, data) -> dict[str, float] | None:
        """Mean |SHAP| per feature name, or None where not computed (deep models)."""
        return None

    def resolved_feature_names(self) -> list[str]:
        """``feature_names`` or ``f0..f{F-1}`` when the caller set none."""
        if self.feature_names is None:
            return [f"f{i}" for i in range(self.n_features)]
        if len(self.feature_names) != self.n_features:
            raise ModelError(f"{self.name}: {len(self.feature_names)} feature names for {self.n_features} features")
        return list(self.feature_names)

    def _check_n_features(self, n_features: int) -> None:
        if n_features != self.n_features:
            raise ModelError(f"{self.name}: data has {n_features} features, the member expects {self.n_features}")


# ---------------------------------------------------------------- date groups


def group_sizes(groups: np.ndarray) -> np.ndarray:
    """int64 [n_groups]: row counts of consecutive equal ``groups`` values,
    in order of appearance. Raises when one group's rows are not contiguous."""
    groups = np.asarray(groups)
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    if len(starts) != len(np.unique(groups)):
        raise ModelError("rows of one date (group) must be contiguous; sort rows by date")
    return np.diff(np.r_[starts, len(groups)]).astype(np.int64)


def relevance_grades(returns: np.ndarray, groups: np.ndarray, n_grades: int) -> np.ndarray:
    """int32 [n]: per-date quantile bucket of ``returns``, 0 (lowest) .. n_grades-1.

    Within a date of m rows, the row of ordinal rank r (0-based, ascending;
    equal returns keep their row order, so grades are reproducible and each
    bucket holds floor or ceil of m / n_grades rows) gets grade
    ``floor(r * n_grades / m)``. ``returns`` must be finite.
    """
    returns = np.asarray(returns, dtype=np.float64)
    groups = np.asarray(groups)
    if n_grades < 2:
        raise ModelError(f"relevance grades need n_grades >= 2, got {n_grades}")
    if not np.all(np.isfinite(returns)):
        raise ModelError("relevance grades need finite returns; drop rows whose target is unknown")
    order = np.lexsort((returns, groups))  # lexsort is stable: ties keep row order
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[starts, len(groups)])
    first_of_row = np.repeat(starts, sizes)
    size_of_row = np.repeat(sizes, sizes)
    rank = np.arange(len(groups)) - first_of_row
    grades = np.empty(len(groups), dtype=np.int32)
    grades[order] = (rank * n_grades) // size_of_row
    return grades


def rank_ic_by_date(score: np.ndarray, returns: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """float64 [n_dates]: Spearman correlation of ``score`` and ``returns``
    within each date (average ranks for ties), dates in ascending order.

    Rows where either value is NaN are left out; dates with fewer than two
    such rows are left out; a date where score or return is constant has
    IC 0 (it ranks nothing).
    """
    frame = pd.DataFrame({"g": np.asarray(groups), "s": np.asarray(score, np.float64), "r": np.asarray(returns, np.float64)})
    frame = frame[np.isfinite(frame["s"]) & np.isfinite(frame["r"])]
    if frame.empty:
        return np.zeros(0)
    ranks = frame.groupby("g", sort=True)[["s", "r"]].rank(method="average")
    ranks["g"] = frame["g"]
    ranks["ss"] = ranks["s"] * ranks["s"]
    ranks["rr"] = ranks["r"] * ranks["r"]
    ranks["sr"] = ranks["s"] * ranks["r"]
    sums = ranks.groupby("g", sort=True).agg(n=("s", "size"), s=("s", "sum"), r=("r", "sum"), ss=("ss", "sum"), rr=("rr", "sum"), sr=("sr", "sum"))
    sums = sums[sums["n"] >= 2]
    n = sums["n"].to_numpy(np.float64)
    cov = sums["sr"].to_numpy() - sums["s"].to_numpy() * sums["r"].to_numpy() / n
    var_s = sums["ss"].to_numpy() - sums["s"].to_numpy() ** 2 / n
    var_r = sums["rr"].to_numpy() - sums["r"].to_numpy() ** 2 / n
    denominator = np.sqrt(np.clip(var_s, 0, None) * np.clip(var_r, 0, None))
    # Ranks are small integers / half-integers: a relative floor separates
    # "constant" from rounding noise.
    informative = denominator > 1e-9 * n * n
    return np.where(informative, cov / np.where(informative, denominator, 1.0), 0.0)


def mean_rank_ic(score: np.ndarray, returns: np.ndarray, groups: np.ndarray) -> float:
    """Mean over dates of :func:`rank_ic_by_date` (0.0 when there is no date)."""
    by_date = rank_ic_by_date(score, returns, groups)
    return float(by_date.mean()) if len(by_date) else 0.0


def finite_target_rows(y: np.ndarray, target: int) -> np.ndarray:
    """bool [n]: rows whose target column is known (the rows a member learns from)."""
    return np.isfinite(y[:, target])


# ---------------------------------------------------------------- shared by members


def feature_matrix(data: "TabularData | np.ndarray") -> np.ndarray:
    """float32 [n, F] C-contiguous rows of a :class:`TabularData` or an array."""
    X = data.X if isinstance(data, TabularData) else np.asarray(data)
    if X.ndim != 2:
        raise ModelError(f"features must be [n, F], got shape {X.shape}")
    return np.ascontiguousarray(X, dtype=np.float32)


def spread_rows(n_rows: int, max_rows: int) -> np.ndarray:
    """int64 [min(n_rows, max_rows)]: evenly spaced row indices (deterministic subsample)."""
    if n_rows <= max_rows:
        return np.arange(n_rows, dtype=np.int64)
    return np.linspace(0, n_rows - 1, max_rows).round().astype(np.int64)


def read_json(path: Path) -> dict:
    """A member's JSON file; ModelError when it cannot be read or parsed."""
    try:
        return jsonio.read_json(path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None


def cuda_available() -> bool:
    """True where torch sees a CUDA device (members then train on it)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a project dependency
        return False
    return bool(torch.cuda.is_available())
