"""What the members optimise and stop on: regression on the per-date label
by default, rankers over the whole cross-section with linear gains, early
stopping on validation rank IC past a floor of trees, ridge chosen on
validation; each against an independent reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from models.lightgbm_member import best_round
from models.rank_ic import RankIC

from .conftest import data_of, make_member


def scipy_mean_rank_ic(score, target, groups) -> float:
    values = []
    for g in np.unique(groups):
        rows = (groups == g) & np.isfinite(target)
        if rows.sum() < 2:
            continue
        s, t = score[rows], target[rows]
        values.append(0.0 if np.ptp(s) == 0 or np.ptp(t) == 0 else spearmanr(s, t).statistic)
    return float(np.mean(values))


def test_fast_rank_ic_equals_scipy_spearman_with_ties_and_unknown_targets():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 40)
    target = rng.standard_normal(len(groups))
    target[::13] = np.nan
    score = (0.3 * np.nan_to_num(target) + rng.standard_normal(len(groups))).round(1)  # many ties
    score[groups == 4] = 1.0  # a constant date counts as 0
    assert RankIC(target, groups)(score) == pytest.approx(scipy_mean_rank_ic(score, target, groups), abs=1e-12)


def test_the_best_round_is_taken_at_or_past_the_floor_of_trees():
    curve = np.array([0.9, 0.1, 0.2, 0.5, 0.4])
    assert best_round(curve, True, 1) == 1
    assert best_round(curve, True, 2) == 4
    assert best_round(curve, False, 2) == 2
    assert best_round(curve, True, 50) == 5  # fewer rounds than the floor: the last


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_gbms_regress_and_stop_on_validation_rank_ic(kind, market):
    member = make_member(kind, n_estimators=60, early_stopping_rounds=60, min_trees=5)
    valid = data_of(member, market, "valid")
    report = member.fit(data_of(member, market, "train"), valid)
    params = member.lightgbm_params() if kind == "lightgbm" else member.xgboost_params()
    assert params["objective"] in ("regression", "reg:squarederror")
    assert report["metric"] == "rank_ic" and report["iterations_run"] == 60
    # the kept round's validation metric is the rank IC of the kept model's
    # scores (XGBoost's evaluation log keeps six digits)
    kept = scipy_mean_rank_ic(member.predict(valid), valid.target_returns, valid.groups)
    assert report["valid_metric"] == pytest.approx(kept, abs=1e-6)
    assert report["best_iteration"] >= 5


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_a_model_on_noise_keeps_its_floor_of_trees_and_ties_no_more_than_its_inputs(kind, noise_market):
    member = make_member(kind, n_estimators=80, early_stopping_rounds=10, min_trees=30)
    test = data_of(member, noise_market, "test")
    member.fit(data_of(member, noise_market, "train"), data_of(member, noise_market, "valid"))
    assert member.num_iteration >= 30 if kind == "lightgbm" else member.n_trees >= 30
    scores = member.predict(test)
    assert len(np.unique(scores)) > 0.95 * len(scores)


def test_lightgbm_lambdarank_truncates_at_the_whole_cross_section_with_linear_gains(market):
    member = make_member("lightgbm", objective="lambdarank", relevance_grades=5, n_estimators=30)
    report = member.fit(data_of(member, market, "train"), data_of(member, market, "valid"))
    params = member.lightgbm_params(largest_date=50)
    assert params["objective"] == "lambdarank"
    assert params["lambdarank_truncation_level"] == 50 and params["ndcg_eval_at"] == [50]
    assert params["label_gain"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert report["valid_rank_ic"] > 0.3


def test_xgboost_pairwise_draws_pairs_over_the_whole_cross_section(market):
    member = make_member("xgboost", objective="rank_pairwise", n_estimators=30)
    report = member.fit(data_of(member, market, "train"), data_of(member, market, "valid"))
    params = member.xgboost_params()
    assert params["objective"] == "rank:pairwise" and params["lambdarank_pair_method"] == "mean"
    assert report["valid_rank_ic"] > 0.3


def test_ridge_solves_the_penalised_normal_equations_for_the_alpha_that_validates_best(market):
    member = make_member("ridge", alphas=(100.0, 1.0, 0.01))  # the best last: the first is no default
    train, valid = data_of(member, market, "train"), data_of(member, market, "valid")
    report = member.fit(train, valid)
    X, y = np.nan_to_num(train.X.astype(np.float64)), train.target_returns
    by_alpha = {}
    for alpha in (100.0, 1.0, 0.01):
        # independent reference: least squares on [X, 1] with a penalty on the slopes only
        penalty = np.sqrt(alpha * len(y)) * np.eye(X.shape[1] + 1)[:-1]
        design = np.vstack([np.column_stack([X, np.ones(len(y))]), penalty])
        solution = np.linalg.lstsq(design, np.r_[y, np.zeros(X.shape[1])], rcond=None)[0]
        score = np.nan_to_num(valid.X.astype(np.float64)) @ solution[:-1] + solution[-1]
        by_alpha[alpha] = (scipy_mean_rank_ic(score, valid.target_returns, valid.groups), solution)
    best = max(by_alpha, key=lambda a: by_alpha[a][0])
    assert report["alpha"] == best
    np.testing.assert_allclose(member.coefficients, by_alpha[best][1][:-1], rtol=1e-8, atol=1e-10)
    assert member.intercept == pytest.approx(by_alpha[best][1][-1], abs=1e-10)
    assert report["path"] == {str(a): pytest.approx(v[0], abs=1e-12) for a, v in by_alpha.items()}


def test_the_ridge_onnx_graph_scores_like_the_native_model_missing_values_included(market, tmp_path):
    import onnxruntime

    member = make_member("ridge")
    member.fit(data_of(member, market, "train"), data_of(member, market, "valid"))
    files = member.save(tmp_path)
    X = data_of(member, market, "test").X.copy()
    X[::7, 2] = np.nan
    X[::11, 0] = np.inf
    session = onnxruntime.InferenceSession(str(tmp_path / files["onnx"]), providers=["CPUExecutionProvider"])
    served = session.run(["SCORE"], {"FEATURES": X.astype(np.float32)})[0]
    assert served.shape == (len(X), 1) and served.dtype == np.float32
    np.testing.assert_allclose(served[:, 0], member.predict(X), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_the_floor_of_trees_holds_when_validation_prefers_the_first_round(kind, market):
    """A validation set whose target is the training target reversed gets
    worse with every round: early stopping's own best is round 1. The
    member must still serve min_trees real trees, not one tree repeated."""
    member = make_member(kind, n_estimators=60, early_stopping_rounds=5, min_trees=30)
    valid = data_of(member, market, "valid")
    reversed_valid = type(valid)(valid.X, -valid.y, valid.groups, valid.horizons, valid.target)
    report = member.fit(data_of(member, market, "train"), reversed_valid)
    assert report["best_iteration"] >= 30
    scores = member.predict(data_of(member, market, "test"))
    assert len(np.unique(scores)) > 0.95 * len(scores)
    first = make_member(kind, n_estimators=1, min_trees=1)
    first.fit(data_of(first, market, "train"), valid)
    assert not np.allclose(scores, first.predict(data_of(first, market, "test")) * report["best_iteration"])
