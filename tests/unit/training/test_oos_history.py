"""Ensembles are fit on accumulated out-of-sample scores, never on a label
that ends after the window's test has started."""

from __future__ import annotations

import numpy as np
import pytest

from training.dataset import build_dataset
from training.oos_history import OutOfSampleHistory

from .conftest import small_settings
from .synthetic import synthetic_bars

MEMBERS = ("a", "b")


@pytest.fixture(scope="module")
def dataset():
    return build_dataset(synthetic_bars(n_symbols=10, n_days=120, seed=5), small_settings(), sequence_length=1)


def rows_of(dataset, first_bar, stop_bar):
    return np.arange(len(dataset))[dataset.rows_of_dates(first_bar, stop_bar)]


def test_only_scores_whose_labels_ended_before_the_test_enter_the_sample(dataset):
    history = OutOfSampleHistory()
    earlier_test = rows_of(dataset, 40, 70)
    history.add(dataset, MEMBERS, earlier_test, np.random.default_rng(0).standard_normal((len(earlier_test), 2)))
    test_start = 72  # labels (span 6) of bars 66..69 end at 72..75: not known yet
    valid = rows_of(dataset, 30, 66)
    sample = history.ensemble_sample(dataset, test_start, valid, np.zeros((len(valid), 2)), MEMBERS)

    assert np.all(dataset.label_end_index[sample.rows] < test_start)
    from_history = np.isin(sample.rows, earlier_test)
    assert set(dataset.date_index[sample.rows[from_history]].tolist()) == set(range(40, 66))
    # validation rows fill only the bar times no earlier test window covers
    assert set(dataset.date_index[sample.rows[~from_history]].tolist()) == set(range(30, 40))
    assert sample.from_history == from_history.sum() and sample.from_validation == (~from_history).sum()
    np.testing.assert_array_equal(sample.labels, dataset.labels[sample.rows, dataset.target])


def test_a_later_window_overrides_an_earlier_one_where_test_windows_overlap(dataset):
    history = OutOfSampleHistory()
    first, second = rows_of(dataset, 40, 60), rows_of(dataset, 50, 70)
    history.add(dataset, MEMBERS, first, np.full((len(first), 2), 1.0))
    history.add(dataset, MEMBERS, second, np.full((len(second), 2), 2.0))
    rows, scores = history.matured(dataset, before_bar=200)
    assert len(rows) == len(np.unique(rows)) == len(rows_of(dataset, 40, 70))
    np.testing.assert_array_equal(scores[dataset.date_index[rows] >= 50], 2.0)
    np.testing.assert_array_equal(scores[dataset.date_index[rows] < 50], 1.0)


def test_the_ensembles_of_a_window_change_with_matured_scores_only(dataset):
    """Scores of rows whose labels end after the test start cannot move
    the ensembles; those whose labels have ended do."""
    from models.ensemble import fit_ensemble

    rng = np.random.default_rng(1)
    earlier_test = rows_of(dataset, 40, 70)
    base_scores = rng.standard_normal((len(earlier_test), 2))
    valid = rows_of(dataset, 30, 66)
    test_start = 72

    def ensembles(scores):
        history = OutOfSampleHistory()
        history.add(dataset, MEMBERS, earlier_test, scores)
        sample = history.ensemble_sample(dataset, test_start, valid, rng.standard_normal((len(valid), 2)) * 0, MEMBERS)
        return {m: fit_ensemble(m, MEMBERS, sample.scores, sample.labels, sample.groups).params()
                for m in ("ic_weighted", "stacking", "rank_average")}

    base = ensembles(base_scores)
    unripe = dataset.label_end_index[earlier_test] >= test_start
    assert unripe.any()
    changed = base_scores.copy()
    changed[unripe] = rng.standard_normal((unripe.sum(), 2)) * 100
    assert ensembles(changed) == base
    # member a made to predict the label perfectly on the matured rows: it is selected
    ripe_scores = base_scores.copy()
    ripe_scores[~unripe, 0] = dataset.labels[earlier_test[~unripe], dataset.target]
    ripe_scores[~unripe, 1] = -dataset.labels[earlier_test[~unripe], dataset.target]
    assert ensembles(ripe_scores)["rank_average"]["weights"] == {"a": 1.0, "b": 0.0}


def test_members_must_keep_their_names_across_windows(dataset):
    history = OutOfSampleHistory()
    history.add(dataset, MEMBERS, rows_of(dataset, 40, 41), np.zeros((10, 2)))
    with pytest.raises(ValueError, match="differ"):
        history.add(dataset, ("a", "c"), rows_of(dataset, 41, 42), np.zeros((10, 2)))
