"""Reuse across walk-forward windows: deep members continue from the last
window's weights with fewer epochs; GBMs refit."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from .conftest import DEEP_KINDS, data_of, fitted, make_member


@pytest.mark.parametrize("kind", DEEP_KINDS)
def test_warm_started_fit_starts_from_the_previous_weights_and_runs_fewer_epochs(kind, market):
    previous = fitted(kind, market, "signal")
    member = make_member(kind)
    member.warm_start_from(previous.member)
    report = member.fit(data_of(member, market, "train"), data_of(member, market, "valid"))
    assert report["warm"] is True
    assert report["epochs_run"] <= member.training_settings["warm_epochs"] < member.training_settings["epochs"]
    valid = data_of(member, market, "valid")
    # Before its first epoch the network is the previous one: the previous
    # network's validation IC, computed here by the definition.
    assert report["initial_valid_rank_ic"] == pytest.approx(spearman_by_date(previous.member.predict(valid), valid), abs=1e-6)
    # The network kept is the epoch the report names, whichever it was.
    assert report["valid_rank_ic"] == pytest.approx(spearman_by_date(member.predict(valid), valid), abs=1e-6)
    if report["best_epoch"] == 0:
        np.testing.assert_allclose(member.predict(data_of(member, market, "test")), previous.test_scores, atol=1e-6)


def spearman_by_date(scores: np.ndarray, data) -> float:
    """Mean over dates of scipy's Spearman correlation of scores and target returns."""
    returns = data.y[:, data.target]
    ics = [spearmanr(scores[data.groups == g], returns[data.groups == g]).statistic for g in np.unique(data.groups)]
    return float(np.mean(ics))


@pytest.mark.parametrize("kind", DEEP_KINDS)
def test_warm_start_from_another_architecture_falls_back_to_a_cold_fit(kind, market):
    member = make_member(kind, hidden_size=8, epochs=1)
    member.warm_start_from(fitted(kind, market, "signal").member)
    report = member.fit(data_of(member, market, "train"), data_of(member, market, "valid"))
    assert report["warm"] is False and "initial_valid_rank_ic" not in report


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_gbms_refit_from_scratch_after_a_warm_start(kind, market):
    previous = fitted(kind, market, "signal")
    member = make_member(kind)
    member.warm_start_from(previous.member)
    report = member.fit(data_of(member, market, "train"), data_of(member, market, "valid"))
    assert report["warm"] is False
    np.testing.assert_array_equal(member.predict(data_of(member, market, "test")), previous.test_scores)
