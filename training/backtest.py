"""The walk-forward loop: fit each window, score its test window.

Two ways to run the same folds:

* :func:`run_walk_forward` (what ``signalml train`` does): the dataset is
  built once and each window is a slice of it; each window's members are
  warm-started from the previous window's.
* :func:`run_naive_walk_forward` (the benchmark's reference): every window
  rebuilds its dataset from the bars (features replayed from the start of
  history, so they are equal) and trains fresh members.

Both return a :class:`Backtest` whose ``predictions`` frame has one row per
(test date, symbol): ``date``, ``symbol``, ``bar``, ``fold``,
``label_end``, ``fwd_ret_<h>``, ``label``, then the scores
``model.<name>``, ``ensemble.<method>`` and ``baseline.<name>``.

Both keep the members' test scores as they go
(:class:`training.oos_history.OutOfSampleHistory`): each window's
ensembles are fit on the earlier windows' scores whose labels have ended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from signalml.config import Settings
from training.baseline import baseline_name
from training.dataset import Dataset, build_dataset
from training.oos_history import OutOfSampleHistory
from training.progress import progress_bar
from training.splits.walk_forward import WalkForwardFold
from training.window import WindowFit, fit_window, member_input, score_rows

MemberFactory = Callable[[Settings, int, list[str]], list]
IMPORTANCE_ROWS = 2000


def default_member_factory(settings: Settings, n_features: int, feature_names: list[str]) -> list:
    from models.factory import build_members

    return build_members(settings, n_features, feature_names)


@dataclass
class FoldResult:
    fold: WalkForwardFold
    predictions: pd.DataFrame
    ensemble_params: dict[str, dict]
    reports: dict[str, dict]
    importance: dict[str, dict[str, float]]
    seconds: float
    ensemble_sample: dict = field(default_factory=dict)


@dataclass
class Backtest:
    member_names: list[str]
    folds: list[FoldResult]
    last_fit: WindowFit | None
    seconds: float = 0.0
    dataset_seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    history: OutOfSampleHistory = field(default_factory=OutOfSampleHistory)

    @property
    def predictions(self) -> pd.DataFrame:
        """Every fold's test predictions; where test windows overlap, the
        latest fold (the most recent model) keeps the date."""
        frame = pd.concat([f.predictions for f in self.folds], ignore_index=True)
        frame = frame.sort_values(["bar", "fold"]).drop_duplicates(["bar", "symbol"], keep="last")
        return frame.sort_values(["bar", "symbol"]).reset_index(drop=True)


def run_walk_forward(
    dataset: Dataset,
    settings: Settings,
    folds: list[WalkForwardFold],
    *,
    member_factory: MemberFactory = default_member_factory,
    warm_start: bool = True,
    progress: bool = True,
) -> Backtest:
    """Every fold on one shared dataset, warm-starting window to window."""
    started = time.perf_counter()
    results: list[FoldResult] = []
    previous: WindowFit | None = None
    history = OutOfSampleHistory()
    bar = progress_bar(folds, progress, desc="walk-forward", unit="window")
    for fold in bar:
        members = member_factory(settings, len(dataset.feature_names), list(dataset.feature_names))
        fitted = fit_window(
            dataset,
            members,
            fold,
            settings,
            previous=previous.members if (warm_start and previous is not None) else None,
            history=history,
            on_member=lambda name, fold=fold: _describe(bar, fold, name),
        )
        results.append(score_fold(dataset, fitted, settings, history=history))
        previous = fitted
    names = [m.name for m in previous.members] if previous else []
    return Backtest(names, results, previous, time.perf_counter() - started, history=history)


def run_naive_walk_forward(
    bars: pd.DataFrame,
    settings: Settings,
    folds: list[WalkForwardFold],
    dates: np.ndarray,
    *,
    sequence_length: int,
    member_factory: MemberFactory = default_member_factory,
    progress: bool = True,
) -> Backtest:
    """Every fold from scratch: features, labels and panel rebuilt from the
    bars up to the window's last label end, fresh members, no warm start.
    ``dates`` is the full bar clock (to cut the bars by bar index)."""
    started = time.perf_counter()
    results: list[FoldResult] = []
    dataset_seconds = 0.0
    last: WindowFit | None = None
    history = OutOfSampleHistory()
    bar = progress_bar(folds, progress, desc="walk-forward (naive)", unit="window")
    bar_dates = pd.to_datetime(bars["date"]) if "date" in bars.columns else pd.to_datetime(bars["ts"], unit="ms")
    longest = settings.training.label_span_bars  # the last close any label of the window reads
    for fold in bar:
        t0 = time.perf_counter()
        last_bar = min(fold.test_stop - 1 + longest, len(dates) - 1)
        window_bars = bars[(bar_dates <= pd.Timestamp(dates[last_bar])).to_numpy()]
        dataset = build_dataset(window_bars, settings, sequence_length=sequence_length)
        dataset_seconds += time.perf_counter() - t0
        members = member_factory(settings, len(dataset.feature_names), list(dataset.feature_names))
        last = fit_window(
            dataset, members, fold, settings, history=history, on_member=lambda name, fold=fold: _describe(bar, fold, name)
        )
        results.append(score_fold(dataset, last, settings, history=history))
    names = [m.name for m in last.members] if last else []
    backtest = Backtest(names, results, last, time.perf_counter() - started, history=history)
    backtest.dataset_seconds = dataset_seconds
    return backtest


def score_fold(
    dataset: Dataset, fitted: WindowFit, settings: Settings, *, history: OutOfSampleHistory | None = None
) -> FoldResult:
    """Test-window predictions of one fitted window, plus SHAP importance
    of the members that compute it (on up to IMPORTANCE_ROWS test rows);
    the members' test scores are added to ``history``."""
    t0 = time.perf_counter()
    fold = fitted.fold
    window = dataset.rows_of_dates(fold.test_start, fold.test_stop)
    rows = np.arange(len(dataset))[window]
    scores, combined = score_rows(dataset, fitted, rows, settings)
    if history is not None:
        history.add(dataset, fitted.member_names, rows, scores)
    frame = prediction_frame(dataset, rows, fold.index)
    for j, name in enumerate(fitted.member_names):
        frame[f"model.{name}"] = scores[:, j]
    for method, values in combined.items():
        frame[f"ensemble.{method}"] = values
    frame[f"baseline.{baseline_name(dataset.horizon_bars)}"] = dataset.reversal[rows]

    importance: dict[str, dict[str, float]] = {}
    sample = _spread_sample(rows[dataset.labelled[rows]], IMPORTANCE_ROWS)
    for member in fitted.members:
        if member.input != "tabular" or len(sample) == 0:
            continue
        values = member.importance(member_input(dataset, member, sample, label_cutoff_bar=-1, settings=settings))
        if values:
            importance[member.name] = {k: float(v) for k, v in values.items()}
    params = {method: ensemble.params() for method, ensemble in fitted.ensembles.items()}
    return FoldResult(
        fold, frame, params, fitted.reports, importance, fitted.seconds + time.perf_counter() - t0, fitted.ensemble_sample
    )


def prediction_frame(dataset: Dataset, rows: np.ndarray, fold_index: int) -> pd.DataFrame:
    frame = dataset.frame(rows).reset_index()
    frame.insert(2, "bar", dataset.date_index[rows])
    frame.insert(3, "fold", np.full(len(rows), fold_index, dtype=np.int64))
    frame["label"] = dataset.labels[rows, dataset.target]
    return frame


def _spread_sample(rows: np.ndarray, limit: int) -> np.ndarray:
    if len(rows) <= limit:
        return rows
    return rows[np.linspace(0, len(rows) - 1, limit).astype(np.int64)]


def _describe(bar, fold: WalkForwardFold, member: str) -> None:
    if hasattr(bar, "set_postfix_str"):
        bar.set_postfix_str(f"window {fold.index}: {member}")
