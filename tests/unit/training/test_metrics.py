"""Metrics against scipy and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import pandas as pd

from training.metrics import daily_metrics, evaluate, newey_west_standard_error, paired_test, t_statistics


@pytest.fixture(scope="module")
def panel():
    rng = np.random.default_rng(11)
    n_dates, n_names = 30, 25
    groups = np.repeat(np.arange(n_dates), n_names)
    score = rng.standard_normal(len(groups))
    forward = 0.3 * score + rng.standard_normal(len(groups))
    forward[::17] = np.nan  # missing returns are skipped
    symbols = np.tile(np.arange(n_names), n_dates)
    return score, forward, groups, symbols


def test_ic_and_rank_ic_equal_scipy_per_date(panel):
    score, forward, groups, _ = panel
    daily = daily_metrics(score, forward, groups)
    for g in range(30):
        mine = (groups == g) & np.isfinite(forward)
        assert daily.ic[g] == pytest.approx(stats.pearsonr(score[mine], forward[mine])[0], abs=1e-12)
        assert daily.rank_ic[g] == pytest.approx(stats.spearmanr(score[mine], forward[mine])[0], abs=1e-12)


def test_summary_means_and_information_ratios(panel):
    score, forward, groups, symbols = panel
    daily = daily_metrics(score, forward, groups)
    summary = evaluate(score, forward, groups, symbols=symbols)
    assert summary["ic"] == pytest.approx(daily.ic.mean())
    assert summary["rank_icir"] == pytest.approx(daily.rank_ic.mean() / daily.rank_ic.std(ddof=1))
    assert summary["n_dates"] == 30
    assert 0.5 < summary["hit_rate"] < 1.0 and summary["top_minus_bottom"] > 0


def test_quintile_spread_hit_rate_and_turnover_by_hand():
    # Two dates of 5 names: quintiles are single names.
    groups = np.array([0] * 5 + [1] * 5)
    symbols = np.array(list("abcde") * 2)
    score = np.array([1, 2, 3, 4, 5, 5, 4, 3, 2, 1], dtype=float)
    forward = np.array([0.01, 0.02, 0.00, -0.01, 0.05, 0.03, 0.00, 0.01, 0.02, -0.02])
    daily = daily_metrics(score, forward, groups, symbols=symbols)
    # date 0: top e (0.05) - bottom a (0.01); date 1: top a (0.03) - bottom e (-0.02)
    assert daily.top_minus_bottom.tolist() == pytest.approx([0.04, 0.05])
    # date 1: the top name changed (e → a) and so did the bottom one: turnover 1
    assert daily.turnover.tolist() == [1.0]
    # hit: sign(score - median) == sign(return - median), medians excluded.
    # date 0: score sides - - 0 + +, return median 0.01 → sides 0 + - - +: hits a? no(0) b: - vs + no, d: + vs - no, e: + + yes → 1 of 3
    # date 1: score sides + + 0 - -, return median 0.01 → + - 0 + -: a yes, b no, d no, e yes → 2 of 4
    summary = evaluate(score, forward, groups, symbols=symbols)
    assert summary["hit_rate"] == pytest.approx(3 / 7)
    assert summary["turnover"] == 1.0


def test_dates_with_too_few_names_or_constant_scores_are_skipped():
    groups = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    score = np.array([1.0, 2, 3, 7, 7, 7, 7, 7])
    forward = np.array([0.1, 0.2, 0.3, 0.1, 0.2, 0.3, 0.4, 0.5])
    daily = daily_metrics(score, forward, groups, min_names=4)
    assert list(daily.ic.index) == [1] and np.isnan(daily.ic[1])


def test_newey_west_with_no_lags_is_the_plain_standard_error():
    x = np.random.default_rng(1).standard_normal(200)
    assert newey_west_standard_error(x, 0) == pytest.approx(x.std(ddof=0) / np.sqrt(200))
    # positively autocorrelated series: the HAC error is larger
    y = np.convolve(x, np.ones(5), mode="valid")
    assert newey_west_standard_error(y, 4) > newey_west_standard_error(y, 0)


def test_t_statistics_without_overlap_are_the_plain_one_sample_t():
    x = pd.Series(np.random.default_rng(2).standard_normal(250) + 0.1)
    t = t_statistics(x, overlap_bars=1)
    assert t["nonoverlapping"] == pytest.approx(stats.ttest_1samp(x, 0.0).statistic, rel=1e-12)
    # with no lags, Hansen–Hodrick is the population-variance standard error
    assert t["hansen_hodrick"] == pytest.approx(x.mean() / (x.std(ddof=0) / np.sqrt(len(x))), rel=1e-12)


def test_overlap_correction_shrinks_the_t_of_an_overlapping_series():
    """A 5-bar moving sum of white noise looks five times as informative
    to a naive t; the corrections bring it back towards the t of the noise."""
    rng = np.random.default_rng(4)
    noise = rng.standard_normal(2000) + 0.05
    overlapping = pd.Series(np.convolve(noise, np.ones(5) / 5, mode="valid"))
    naive = t_statistics(overlapping, 1)["hansen_hodrick"]
    corrected = t_statistics(overlapping, 5)
    honest = stats.ttest_1samp(noise, 0.0).statistic
    assert naive > 1.8 * honest
    for key in ("hansen_hodrick", "newey_west", "nonoverlapping"):
        assert abs(corrected[key] - honest) < 0.35 * honest, key


def test_the_paired_test_reads_the_difference_on_common_dates_only():
    a = pd.Series([0.03, 0.01, 0.02, 0.05, np.nan], index=[1, 2, 3, 4, 5])
    b = pd.Series([0.01, 0.02, 0.00, 0.01, 0.07], index=[1, 2, 3, 4, 6])
    result = paired_test(a, b, overlap_bars=1)
    d = np.array([0.02, -0.01, 0.02, 0.04])
    assert result["n_dates"] == 4 and result["mean_difference"] == pytest.approx(d.mean())
    assert result["t_nonoverlapping"] == pytest.approx(stats.ttest_1samp(d, 0.0).statistic)
    assert result["share_of_dates_ahead"] == 0.75


def test_quantile_returns_equal_a_pandas_qcut_of_each_date():
    from training.portfolio import quantile_returns

    rng = np.random.default_rng(8)
    groups = np.repeat(np.arange(20), 50)
    score = rng.standard_normal(1000)
    forward = 0.01 * score + 0.02 * rng.standard_normal(1000)
    result = quantile_returns(score, forward, groups)
    frame = pd.DataFrame({"g": groups, "s": score, "r": forward})
    frame["q"] = frame.groupby("g")["s"].transform(lambda s: pd.qcut(s, 5, labels=False))
    frame["x"] = frame["r"] - frame.groupby("g")["r"].transform("mean")
    expected = frame.groupby(["g", "q"])["x"].mean().unstack().mean()
    np.testing.assert_allclose(result["excess"], expected.to_numpy(), rtol=1e-12)
    assert result["excess"][4] > result["excess"][0]


def test_the_long_short_turnover_and_cost_by_hand():
    from training.portfolio import long_short

    # 5 names, quintiles of one name; rebalanced every 2 of the 4 dates (0 and 2)
    groups = np.repeat([0, 1, 2, 3], 5)
    symbols = np.tile(list("abcde"), 4)
    score = np.array([1, 2, 3, 4, 5] * 2 + [5, 2, 3, 4, 1] * 2, dtype=float)
    forward = np.array([0.00, 0, 0, 0, 0.04] * 2 + [0.03, 0, 0, 0, -0.01] * 2)
    out = long_short(score, forward, groups, symbols, rebalance_every=2, cost_bps=10.0)
    assert out.index.tolist() == [0, 2]
    assert out["gross"].tolist() == pytest.approx([0.04, 0.04])
    # at date 2 both legs were replaced (top e → a, bottom a → e): turnover 1,
    # cost 10 bps x 2 (sell and buy) x 2 legs = 40 bps
    assert np.isnan(out["turnover"].iloc[0]) and out["turnover"].iloc[1] == 1.0
    assert out["cost"].tolist() == pytest.approx([0.0, 0.004])
    assert out["net"].tolist() == pytest.approx([0.04, 0.036])
