"""Fit every member and every ensemble on one walk-forward training window.

A training window [train_start, train_stop) is cut in two by bar time: the
fit part and, at its end, the validation tail (its last
``training.validation_bars`` bars). Fit rows whose label ends in the
validation tail are purged, and every label column (all horizons, not only
the target) is blanked where it would end at or after the next boundary,
so no member learns anything that reads a close it must not know. The
validation rows are out-of-fold for every member: members early-stop on
them. Ensembles (the selection of ``rank_average``, IC weights, the
stacking meta-model) are fit on out-of-sample scores only: earlier test
windows' scores whose labels ended before this window's test, and this
window's validation scores for the bar times those do not cover
(:mod:`training.oos_history`); never on this window's test.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from models.ensemble import METHODS, Ensemble, fit_ensemble
from signalml.config import Settings
from training.dataset import Dataset
from training.oos_history import OutOfSampleHistory
from training.splits.walk_forward import WalkForwardFold

DEFAULT_SEQUENCE_LENGTH = 20


@dataclass
class WindowFit:
    """What one window's fit produced."""

    fold: WalkForwardFold
    members: list  # fitted models.base.Member
    fit_rows: np.ndarray
    valid_rows: np.ndarray
    valid_scores: np.ndarray  # [n_valid, M]
    ensembles: dict[str, Ensemble]
    ensemble_sample: dict = field(default_factory=dict)  # what the ensembles were fit on
    reports: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def member_names(self) -> list[str]:
        return [m.name for m in self.members]


def sequence_length_of(member, settings: Settings | None = None) -> int:
    """T of a sequence member (its own setting), else the features' T."""
    for attribute in ("sequence_length", "length"):
        value = getattr(member, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    model_settings = getattr(settings.models, member.kind, None) if settings is not None else None
    if model_settings is not None and hasattr(model_settings, "sequence_length"):
        return int(model_settings.sequence_length)
    return settings.features.sequence_length if settings is not None else DEFAULT_SEQUENCE_LENGTH


def member_input(dataset: Dataset, member, rows, *, label_cutoff_bar: int | None = None, settings: Settings | None = None):
    """The ``TabularData`` or ``SequenceData`` of ``rows`` that ``member``
    reads; label columns that end at or after ``label_cutoff_bar`` blanked."""
    if member.input == "sequence":
        data = dataset.sequence(rows, sequence_length_of(member, settings))
    else:
        data = dataset.tabular(rows)
    if label_cutoff_bar is None:
        return data
    y = blank_labels_after(data.y, data.groups, dataset.horizons, label_cutoff_bar, entry_lag_bars=dataset.entry_lag_bars)
    return type(data)(**{**{f: getattr(data, f) for f in data.__dataclass_fields__}, "y": y})


def blank_labels_after(y: np.ndarray, bar_index: np.ndarray, horizons, cutoff_bar: int, *, entry_lag_bars: int) -> np.ndarray:
    """Copy of ``y`` [n, H] with NaN where the label's end, bar + entry lag
    + horizon, is at or after ``cutoff_bar``."""
    ends = np.asarray(bar_index)[:, None] + int(entry_lag_bars) + np.asarray(horizons)[None, :]
    return np.where(ends < cutoff_bar, y, np.nan)


def window_rows(dataset: Dataset, fold: WalkForwardFold, validation_bars: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, valid) labelled rows of a fold's training window, purged."""
    valid_start = fold.validation_start(validation_bars)
    labelled = dataset.labelled
    ends = dataset.label_end_index
    rows = np.arange(*dataset.rows_of_dates(fold.train_start, fold.train_stop).indices(len(dataset)))
    rows = rows[labelled[rows]]
    bars = dataset.date_index[rows]
    fit = rows[(bars < valid_start) & (ends[rows] < valid_start)]
    valid = rows[(bars >= valid_start) & (ends[rows] < fold.test_start)]
    return fit, valid


def fit_window(
    dataset: Dataset,
    members: list,
    fold: WalkForwardFold,
    settings: Settings,
    *,
    previous: list | None = None,
    history: OutOfSampleHistory | None = None,
    on_member=None,
) -> WindowFit:
    """Fit ``members`` (fresh instances) on ``fold``'s training window;
    warm-start each from the same-named member of ``previous`` if given;
    fit the ensembles on ``history`` (earlier test windows' scores) and
    this window's validation scores."""
    started = time.perf_counter()
    training = settings.training
    fit_rows, valid_rows = window_rows(dataset, fold, training.validation_bars)
    if len(fit_rows) == 0 or len(valid_rows) == 0:
        raise ValueError(
            f"fold {fold.index}: empty fit ({len(fit_rows)} rows) or validation ({len(valid_rows)} rows) set; "
            "lengthen training.train_period or shorten training.validation_bars"
        )
    valid_start = fold.validation_start(training.validation_bars)
    by_name = {m.name: m for m in previous or []}
    reports: dict[str, dict] = {}
    valid_scores = np.empty((len(valid_rows), len(members)))
    for j, member in enumerate(members):
        if on_member is not None:
            on_member(member.name)
        if member.name in by_name:
            member.warm_start_from(by_name[member.name])
        fit_data = member_input(dataset, member, fit_rows, label_cutoff_bar=valid_start, settings=settings)
        valid_data = member_input(dataset, member, valid_rows, label_cutoff_bar=fold.test_start, settings=settings)
        t0 = time.perf_counter()
        report = member.fit(fit_data, valid_data) or {}
        reports[member.name] = {**report, "fit_s": time.perf_counter() - t0}
        valid_scores[:, j] = member.predict(valid_data)
    names = [m.name for m in members]
    sample = (history or OutOfSampleHistory()).ensemble_sample(dataset, fold.test_start, valid_rows, valid_scores, names)
    ensembles = {
        method: fit_ensemble(
            method, names, sample.scores, sample.labels, sample.groups, min_weight=settings.ensemble.min_weight
        )
        for method in METHODS
    }
    return WindowFit(
        fold, members, fit_rows, valid_rows, valid_scores, ensembles, sample.describe(), reports,
        time.perf_counter() - started,
    )


def score_rows(
    dataset: Dataset, fitted: WindowFit, rows: np.ndarray, settings: Settings | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Member scores [n, M] and each ensemble's combined score of ``rows``."""
    scores = np.empty((len(rows), len(fitted.members)))
    for j, member in enumerate(fitted.members):
        # Labels are blanked (cut-off before bar 0): prediction sees features only.
        data = member_input(dataset, member, rows, label_cutoff_bar=-1, settings=settings)
        scores[:, j] = member.predict(data) if len(rows) else np.empty(0)
    groups = dataset.date_index[rows]
    combined = {method: ensemble.combine(scores, groups) for method, ensemble in fitted.ensembles.items()}
    return scores, combined
