"""Ensembles on hand-computed cross-sections; fitted parameters are plain data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.ensemble import (
    METHODS,
    AverageEnsemble,
    ICWeightedEnsemble,
    RankAverageEnsemble,
    RankVoteEnsemble,
    StackingEnsemble,
    fit_ensemble,
    from_manifest,
    from_params,
    ic_weights,
    manifest_entry,
    mean_rank_ic,
)

MEMBERS = ("a", "b")
# One cross-section of three symbols. Column z-scores (population std):
# a: [-r, 0, r], b: [-r, r, 0] with r = sqrt(3/2).
SCORES = np.array([[1.0, 10.0], [2.0, 30.0], [3.0, 20.0]])
R = np.sqrt(1.5)


def test_average_is_the_mean_of_cross_sectional_zscores():
    np.testing.assert_allclose(AverageEnsemble(MEMBERS).combine(SCORES), [-R, R / 2, R / 2], rtol=1e-12)


def test_ic_weighted_is_the_weighted_mean_of_zscores():
    ensemble = ICWeightedEnsemble(MEMBERS, {"a": 0.75, "b": 0.25})
    np.testing.assert_allclose(ensemble.combine(SCORES), [-R, 0.25 * R, 0.75 * R], rtol=1e-12)


def test_stacking_applies_intercept_and_coefficients_to_zscores():
    ensemble = StackingEnsemble(MEMBERS, 0.1, {"a": 0.5, "b": -0.2})
    np.testing.assert_allclose(ensemble.combine(SCORES), [0.1 - 0.3 * R, 0.1 - 0.2 * R, 0.1 + 0.5 * R], rtol=1e-12)


def test_rank_vote_is_the_mean_percentile_rank():
    np.testing.assert_allclose(RankVoteEnsemble(MEMBERS).combine(SCORES), [1 / 3, 5 / 6, 5 / 6], rtol=1e-12)


def test_rank_vote_averages_tied_ranks():
    scores = np.array([[1.0, 1.0], [1.0, 2.0], [3.0, 3.0], [4.0, 3.0]])
    # a: ranks 1.5, 1.5, 3, 4; b: 1, 2, 3.5, 3.5 (over n = 4)
    np.testing.assert_allclose(RankVoteEnsemble(MEMBERS).combine(scores), [1.25 / 4, 1.75 / 4, 3.25 / 4, 3.75 / 4])


def test_rank_average_is_the_mean_percentile_rank_of_the_selected_members_ties_broken_by_zscore():
    # a: ranks 1, 2, 3; b: 1, 3, 2 -> mean ranks 1, 2.5, 2.5: the last two tie,
    # and the mean z-scores (R/2 each) tie too: a true tie of the inputs' order
    both = RankAverageEnsemble(MEMBERS, {"a": 0.5, "b": 0.5})
    np.testing.assert_allclose(both.combine(SCORES), [1 / 3, 2.5 / 3, 2.5 / 3])
    # b = 10, 30, 21: the same ranks, but the z-score now tells rows 2 and 3 apart
    scores = np.array([[1.0, 10.0], [2.0, 30.0], [3.0, 21.0]])
    np.testing.assert_allclose(both.combine(scores), [1 / 3, 2 / 3, 3 / 3])
    only_b = RankAverageEnsemble(MEMBERS, {"a": 0.0, "b": 7.0})  # magnitudes do not matter: equal weights
    assert only_b.weights == {"a": 0.0, "b": 1.0}
    np.testing.assert_allclose(only_b.combine(SCORES), [1 / 3, 3 / 3, 2 / 3])


def test_rank_average_never_ties_names_whose_member_scores_differ():
    """On random cross-sections of 400 names, the combined score has as
    many distinct values as there are distinct rows of member scores."""
    rng = np.random.default_rng(0)
    members = ("a", "b", "c")
    ensemble = RankAverageEnsemble(members, {m: 1.0 for m in members})
    for _ in range(5):
        # coarse scores: members that tie often, like shallow tree ensembles
        scores = rng.integers(0, 40, size=(400, 3)).astype(float)
        combined = ensemble.combine(scores)
        assert len(np.unique(combined)) == len(np.unique(scores, axis=0))
    plain = RankVoteEnsemble(members).combine(scores)
    assert len(np.unique(plain)) < len(np.unique(scores, axis=0))  # a plain mean of ranks does tie


def test_rank_average_selects_members_with_a_positive_out_of_sample_ic():
    labels = np.array([1, 2, 3, 4, 1, 2, 3, 4], dtype=float)
    groups = np.repeat([0, 1], 4)
    scores = np.column_stack([labels, np.array([1, 3, 2, 4, 1, 3, 2, 4], dtype=float), -labels])
    fitted = RankAverageEnsemble.fit(("a", "b", "c"), scores, labels, groups)
    assert fitted.weights == {"a": 0.5, "b": 0.5, "c": 0.0}
    nobody = RankAverageEnsemble.fit(("a", "b"), -scores[:, :2], labels, groups)
    assert nobody.weights == {"a": 0.5, "b": 0.5}  # no positive IC: every member, equally


@pytest.mark.parametrize("method", ["average", "ic_weighted", "rank_vote", "stacking", "rank_average"])
def test_groups_are_combined_one_cross_section_at_a_time(method):
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((12, 2))
    groups = np.array([2, 2, 2, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    labels = rng.standard_normal(12)
    ensemble = fit_ensemble(method, MEMBERS, scores, labels, groups)
    together = ensemble.combine(scores, groups)
    for g in (0, 1, 2):
        np.testing.assert_allclose(together[groups == g], ensemble.combine(scores[groups == g]), rtol=1e-12)


def test_a_missing_member_score_is_skipped_not_propagated():
    scores = SCORES.copy()
    scores[1, 1] = np.nan  # b has no score for the second symbol
    combined = AverageEnsemble(MEMBERS).combine(scores)
    # b's z-scores over its two remaining values are [-1, 1]
    np.testing.assert_allclose(combined, [(-R - 1) / 2, 0.0, (R + 1) / 2], rtol=1e-12)
    assert np.isfinite(RankVoteEnsemble(MEMBERS).combine(scores)).all()


def test_ic_weights_follow_validation_rank_ics():
    labels = np.array([1, 2, 3, 4, 1, 2, 3, 4], dtype=float)
    groups = np.repeat([0, 1], 4)
    a = labels.copy()  # rank IC 1
    b = np.array([1, 3, 2, 4, 1, 3, 2, 4], dtype=float)  # rank IC 0.8
    c = -labels  # rank IC -1
    scores = np.column_stack([a, b, c])
    np.testing.assert_allclose(mean_rank_ic(scores, labels, groups), [1.0, 0.8, -1.0])
    fitted = ICWeightedEnsemble.fit(("a", "b", "c"), scores, labels, groups)
    assert fitted.weights == pytest.approx({"a": 1 / 1.8, "b": 0.8 / 1.8, "c": 0.0})
    dropped = ICWeightedEnsemble.fit(("a", "b", "c"), scores, labels, groups, min_weight=0.5)
    assert dropped.weights == {"a": 1.0, "b": 0.0, "c": 0.0}


def test_no_positive_ic_falls_back_to_equal_weights():
    assert ic_weights(("a", "b"), np.array([-0.1, np.nan])) == {"a": 0.5, "b": 0.5}


def test_stacking_recovers_a_linear_combination_of_zscores():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(4), 50)
    scores = rng.standard_normal((200, 2)) * [1.0, 5.0] + [0.0, 3.0]  # scale and offset do not matter
    z = np.vstack([(s - s.mean(0)) / s.std(0) for s in np.split(scores, 4)])
    labels = 0.2 + 0.3 * z[:, 0] - 0.1 * z[:, 1]
    fitted = StackingEnsemble.fit(MEMBERS, scores, labels, groups, ridge=0.0)
    assert fitted.intercept == pytest.approx(0.2)
    assert fitted.coefficients == pytest.approx({"a": 0.3, "b": -0.1})


@pytest.mark.parametrize("method", METHODS)
def test_parameters_are_plain_data_and_round_trip(method):
    rng = np.random.default_rng(5)
    scores, labels, groups = rng.standard_normal((40, 2)), rng.standard_normal(40), np.repeat(np.arange(4), 10)
    scores[:, 0] += labels  # a positive IC for member a
    ensemble = fit_ensemble(method, MEMBERS, scores, labels, groups)
    params = json.loads(json.dumps(ensemble.params()))
    rebuilt = from_params(params)
    np.testing.assert_array_equal(rebuilt.combine(scores, groups), ensemble.combine(scores, groups))


def test_manifest_entry_serves_the_configured_method():
    rng = np.random.default_rng(6)
    scores, labels, groups = rng.standard_normal((40, 2)), rng.standard_normal(40), np.repeat(np.arange(4), 10)
    scores[:, 1] += labels
    ic = ICWeightedEnsemble.fit(MEMBERS, scores, labels, groups)
    stack = StackingEnsemble.fit(MEMBERS, scores, labels, groups)
    entry = json.loads(json.dumps(manifest_entry(stack, ic, stack)))
    assert set(entry) == {"method", "weights", "stacking"} and set(entry["stacking"]) == {"intercept", "coefficients"}
    served = from_manifest(entry, MEMBERS)
    np.testing.assert_array_equal(served.combine(scores[:10]), stack.combine(scores[:10]))
    assert isinstance(from_manifest({**entry, "method": "ic_weighted"}, MEMBERS), ICWeightedEnsemble)
    assert isinstance(from_manifest({**entry, "method": "rank_vote"}, MEMBERS), RankVoteEnsemble)
    np.testing.assert_array_equal(served.combine_members({"a": scores[:10, 0], "b": scores[:10, 1]}), stack.combine(scores[:10]))
    # rank_average travels with its selection as the weights
    selection = RankAverageEnsemble.fit(MEMBERS, scores, labels, groups)
    entry = json.loads(json.dumps(manifest_entry(selection, ic, stack)))
    assert entry["method"] == "rank_average" and entry["weights"] == {"a": 0.0, "b": 1.0}
    np.testing.assert_array_equal(from_manifest(entry, MEMBERS).combine(scores[:10]), selection.combine(scores[:10]))


def test_shapes_and_names_are_checked():
    with pytest.raises(ValueError):
        AverageEnsemble(MEMBERS).combine(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        AverageEnsemble(("a", "a"))
    with pytest.raises(ValueError):
        fit_ensemble("median", MEMBERS, SCORES, np.zeros(3), None)


def test_the_engine_serves_rank_average_with_the_selection_its_manifest_carries():
    from signalml.contracts import ManifestMember, ModelSetManifest, schema_hash
    from stream.model_set import ModelSet

    manifest = ModelSetManifest(
        model_set="ms-1", created_at=1, members=[ManifestMember("a", 1, "lightgbm", "tabular", 0.0),
                                                 ManifestMember("b", 1, "ridge", "tabular", 1.0)],
        ensemble_method="rank_average", feature_names=["f"], feature_schema_hash=schema_hash(["f"]), horizon_bars=5,
        ensemble_weights={"a": 0.0, "b": 1.0},
    )
    served = ModelSet.of(manifest, ["f"])
    assert isinstance(served.ensemble, RankAverageEnsemble) and served.ensemble.weights == {"a": 0.0, "b": 1.0}
    np.testing.assert_allclose(served.combine({"a": SCORES[:, 0], "b": SCORES[:, 1]}), [1 / 3, 3 / 3, 2 / 3])
