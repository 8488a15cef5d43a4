"""Hyper-parameter search: bounded by its time budget, off at 0, no look-ahead."""

from __future__ import annotations

import time

import numpy as np
import pytest

from models.lightgbm_member import LightGBMMember
from training.dataset import build_dataset
from training.hyperopt import purged_cv_rank_ic, tune, with_model_params
from training.run import plan_folds
from training.splits import WalkForward

from .conftest import small_settings
from .synthetic import synthetic_bars


def lightgbm_from_settings(settings, n_features, names):
    params = settings.models.lightgbm
    return [
        LightGBMMember(
            n_features, feature_names=names, n_estimators=20, learning_rate=params.learning_rate, num_leaves=params.num_leaves,
            min_child_samples=params.min_child_samples, subsample=params.subsample,
            colsample_bytree=params.colsample_bytree, num_threads=1,
        )
    ]


def setup(budget_s):
    settings = small_settings(hyperopt_budget_s=budget_s)
    settings = with_model_params(settings, "xgboost", {"enabled": False})
    dataset = build_dataset(synthetic_bars(n_symbols=20, n_days=200, signal=0.5, seed=5), settings, sequence_length=1)
    return settings, dataset, plan_folds(WalkForward.from_settings(settings.training), dataset)[0]


def test_search_stays_within_its_budget_and_returns_the_best_parameters():
    settings, dataset, window = setup(4.0)
    started = time.perf_counter()
    tuned, report = tune(dataset, settings, window, member_factory=lightgbm_from_settings)
    elapsed = time.perf_counter() - started
    assert elapsed < 4.0 + 6.0  # the trial running when time is up may finish
    result = report["lightgbm"]
    assert result["trials"] >= 1 and result["configured_cv_rank_ic"] is not None
    for name, value in result["best_params"].items():
        assert getattr(tuned.models.lightgbm, name) == value
    # The returned settings are the best trial's: refit on the same purged
    # folds they score what the report says, and so do the configured ones.
    rows = np.arange(len(dataset))[dataset.rows_of_dates(window.train_start, window.train_stop)]
    rows = rows[dataset.labelled[rows] & (dataset.label_end_index[rows] < window.test_start)]

    def cv(chosen):
        only = with_model_params(chosen, "lightgbm", {}, only=True)
        return purged_cv_rank_ic(dataset, only, rows, lightgbm_from_settings, label_cutoff_bar=window.test_start)

    assert cv(tuned) == pytest.approx(result["best_cv_rank_ic"], abs=1e-12)
    assert cv(settings) == pytest.approx(result["configured_cv_rank_ic"], abs=1e-12)


def test_a_zero_budget_turns_the_search_off():
    settings, dataset, window = setup(0.0)
    tuned, report = tune(dataset, settings, window, member_factory=lightgbm_from_settings)
    assert tuned is settings and report == {}


def test_with_model_params_validates_and_can_isolate_one_member():
    settings = small_settings()
    only = with_model_params(settings, "lightgbm", {"num_leaves": 15}, only=True)
    assert only.models.lightgbm.num_leaves == 15 and only.models.lightgbm.enabled
    assert not only.models.xgboost.enabled and not only.models.lstm.enabled


def test_cv_objective_purges_on_the_longest_label_and_blanks_labels_past_the_window():
    from training.hyperopt import purged_cv_rank_ic

    from .synthetic import RidgeMember

    settings, dataset, window = setup(0.0)
    seen = []

    class Spy(RidgeMember):
        def fit(self, train, valid):
            seen.append((train, valid))
            return super().fit(train, valid)

    rows = dataset.labelled_rows(dataset.rows_of_dates(window.train_start, window.train_stop))
    factory = lambda s, n, names: [Spy(n, feature_names=names)]  # noqa: E731
    purged_cv_rank_ic(dataset, settings, rows, factory, label_cutoff_bar=window.test_start)
    longest = 1 + max(dataset.horizons)  # the longest label reads the close of t + 1 + h
    assert len(seen) == settings.training.cv_folds
    assert settings.training.embargo == 6  # the target label's span by default
    for train, valid in seen:
        first, last = valid.groups.min(), valid.groups.max() + longest + settings.training.embargo
        assert not np.any((train.groups <= last) & (train.groups + longest >= first))
        for data in (train, valid):
            for j, h in enumerate(dataset.horizons):
                assert np.all(data.groups[np.isfinite(data.y[:, j])] + 1 + h < window.test_start)
