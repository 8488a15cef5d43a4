"""One window's fit: purged rows, blanked labels, ensembles from validation only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import models.ensemble as ensemble_module
from training.dataset import build_dataset
from training.splits import WalkForward
from training.window import blank_labels_after, fit_window, score_rows, window_rows

from .conftest import small_settings
from .synthetic import RidgeMember, SequenceRidgeMember, synthetic_bars


class SpyMember(RidgeMember):
    """Records what fit and predict were given."""

    def fit(self, train, valid):
        self.seen_train, self.seen_valid = train, valid
        return super().fit(train, valid)

    def predict(self, data):
        self.predicted_labels = getattr(self, "predicted_labels", []) + [np.asarray(data.y).copy()]
        return super().predict(data)


@pytest.fixture(scope="module")
def setup():
    settings = small_settings()
    dataset = build_dataset(synthetic_bars(n_symbols=15, n_days=230, signal=0.5, seed=2), settings, sequence_length=4)
    fold = WalkForward.from_settings(settings.training).folds(dataset.n_dates - 20)[1]
    return settings, dataset, fold


def members(n_features, names):
    return [
        SpyMember(n_features, name="ridge", feature_names=names),
        SequenceRidgeMember(n_features, name="seq", feature_names=names),
    ]


def test_fit_and_validation_rows_are_purged_by_label_end(setup):
    settings, dataset, fold = setup
    fit, valid = window_rows(dataset, fold, settings.training.validation_bars)
    valid_start = fold.validation_start(settings.training.validation_bars)
    assert dataset.label_end_index[fit].max() < valid_start
    assert dataset.date_index[valid].min() >= valid_start
    assert dataset.label_end_index[valid].max() < fold.test_start
    assert dataset.date_index[fit].min() >= fold.train_start


def test_no_horizon_of_any_training_label_reaches_past_its_boundary(setup):
    settings, dataset, fold = setup
    fitted = fit_window(dataset, members(len(dataset.feature_names), list(dataset.feature_names)), fold, settings)
    spy = fitted.members[0]
    valid_start = fold.validation_start(settings.training.validation_bars)
    for data, boundary in ((spy.seen_train, valid_start), (spy.seen_valid, fold.test_start)):
        for j, h in enumerate(dataset.horizons):
            known = np.isfinite(data.y[:, j])
            # the label of bar t reads the close of t + 1 + h
            assert np.all(data.groups[known] + 1 + h < boundary), f"horizon {h} label crosses bar {boundary}"
            if j == dataset.target:  # the rows are cut by the target label's end, no further
                assert np.any(data.groups[known] + 1 + h == boundary - 1)
    # the 20-bar labels of the fit part's last 20 bars were blanked, the 1-bar ones mostly kept
    assert np.isnan(spy.seen_train.y[:, 2]).sum() > np.isnan(spy.seen_train.y[:, 0]).sum()
    # prediction never receives labels
    _, _ = score_rows(dataset, fitted, np.arange(100), settings)
    assert all(np.isnan(y).all() for y in spy.predicted_labels[1:])


def test_blank_labels_after_is_per_horizon_and_counts_the_entry_lag():
    y = np.ones((3, 2))
    blanked = blank_labels_after(y, np.array([0, 1, 2]), (1, 2), cutoff_bar=3, entry_lag_bars=0)
    np.testing.assert_array_equal(np.isnan(blanked), [[False, False], [False, True], [True, True]])
    lagged = blank_labels_after(y, np.array([0, 1, 2]), (1, 2), cutoff_bar=4, entry_lag_bars=1)
    np.testing.assert_array_equal(np.isnan(lagged), [[False, False], [False, True], [True, True]])


def test_ic_weights_and_stacking_ignore_the_test_window(setup):
    settings, dataset, fold = setup
    names = list(dataset.feature_names)
    first = fit_window(dataset, members(len(names), names), fold, settings)

    rng = np.random.default_rng(0)
    test = np.arange(len(dataset))[dataset.rows_of_dates(fold.test_start, dataset.n_dates)]
    features, labels, returns = dataset.features.copy(), dataset.labels.copy(), dataset.returns.copy()
    features[test] = rng.standard_normal(features[test].shape)
    labels[test] = rng.uniform(-0.5, 0.5, labels[test].shape)
    returns[test] = rng.standard_normal(returns[test].shape)
    changed = dataclasses.replace(dataset, features=features, labels=labels, returns=returns)
    second = fit_window(changed, members(len(names), names), fold, settings)

    assert second.ensembles["ic_weighted"].params() == first.ensembles["ic_weighted"].params()
    assert second.ensembles["stacking"].params() == first.ensembles["stacking"].params()


def test_stacking_meta_model_sees_only_out_of_fold_predictions(setup, monkeypatch):
    settings, dataset, fold = setup
    seen = {}
    original = ensemble_module.StackingEnsemble.fit.__func__

    def spy(cls, members_, oof_scores, labels, groups, **kw):
        seen["groups"], seen["scores"] = np.asarray(groups).copy(), np.asarray(oof_scores).copy()
        return original(cls, members_, oof_scores, labels, groups, **kw)

    monkeypatch.setattr(ensemble_module.StackingEnsemble, "fit", classmethod(spy))
    names = list(dataset.feature_names)
    fitted = fit_window(dataset, members(len(names), names), fold, settings)
    member_fit_bars = set(fitted.members[0].seen_train.groups.tolist())
    assert member_fit_bars and not member_fit_bars & set(seen["groups"].tolist())
    np.testing.assert_array_equal(seen["groups"], dataset.date_index[fitted.valid_rows])
    np.testing.assert_array_equal(seen["scores"], fitted.valid_scores)  # the members' scores of those rows


def test_previous_window_members_warm_start_the_next(setup):
    settings, dataset, fold = setup
    names = list(dataset.feature_names)
    first = fit_window(dataset, members(len(names), names), fold, settings)
    second = fit_window(dataset, members(len(names), names), fold, settings, previous=first.members)
    assert second.members[0].warm_from is first.members[0]
