"""The retraining loop's history, promotion gate and trigger rules, in-process."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from signalml.config import load_settings
from signalml.contracts import DriftEvent
from signalml.errors import DataError
from training.history import merge_history
from training.promotion import Evaluation, decide, evaluate, holdout_bars
from training.retrain import RetrainLoop


def settings(**retrain):
    return load_settings(environ={}, overrides={"retrain": {"http_port": 0, **retrain}})


def loop(**retrain) -> RetrainLoop:
    return RetrainLoop(settings(**retrain))


def event(severity="critical", kind="ic_decay", model_set="ms-1") -> DriftEvent:
    return DriftEvent(ts=1, kind=kind, subject="ensemble", statistic=-0.1, threshold=0.0, severity=severity,
                      model_set=model_set)


def candidate(rank_ic, t):
    return {"rank_ic": rank_ic, "rank_ic_t_stat": t}


def paired(mean, t):
    return {"mean_difference": mean, "t_stat": t}


def test_the_gate_needs_a_positive_significant_candidate_and_a_paired_win_where_both_are_out_of_sample():
    cfg = settings(min_candidate_t=1.0, min_improvement=0.005, min_paired_t=1.5, min_comparable_bars=20).retrain
    alone = Evaluation(252, 1000, candidate(0.02, 1.4))
    assert decide(alone, cfg) is None  # nothing in service: the candidate stands on its own
    assert "is not positive" in decide(Evaluation(252, 1000, candidate(-0.01, -1.0)), cfg)
    assert "below retrain.min_candidate_t 1.0" in decide(Evaluation(252, 1000, candidate(0.01, 0.6)), cfg)
    assert "no rank IC" in decide(Evaluation(252, 1000, candidate(float("nan"), float("nan"))), cfg)

    better = Evaluation(252, 1000, candidate(0.02, 1.4), {"rank_ic": 0.0}, paired(0.02, 2.0), comparable_bars=200)
    assert decide(better, cfg) is None
    weak = Evaluation(252, 1000, candidate(0.02, 1.4), {"rank_ic": 0.0}, paired(0.02, 1.0), comparable_bars=200)
    refusal = decide(weak, cfg)
    assert "does not beat the current set on 200 comparable bar times" in refusal
    assert "retrain.min_improvement 0.005 and retrain.min_paired_t 1.5" in refusal
    small = Evaluation(252, 1000, candidate(0.02, 1.4), {"rank_ic": 0.0}, paired(0.001, 2.5), comparable_bars=200)
    assert "does not beat" in decide(small, cfg)
    # too few bar times where the set in service is out of sample: no fair comparison, the candidate alone
    few = Evaluation(252, 1000, candidate(0.02, 1.4), {"rank_ic": 0.1}, paired(-0.08, -3.0), comparable_bars=10)
    assert decide(few, cfg) is None


def test_the_paired_evaluation_reads_the_comparable_rows_only():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 40)
    forward = rng.standard_normal(len(groups))
    cand = forward + 2 * rng.standard_normal(len(groups))
    curr = rng.standard_normal(len(groups))
    comparable = groups >= 10  # the set in service was trained on bars 0..9
    curr[~comparable] = forward[~comparable]  # ... where it looks perfect, in sample
    result = evaluate(cand, forward, groups, horizon_bars=1, evaluation_bars=30, current_score=curr,
                      comparable=comparable)
    assert result.comparable_bars == 20 and result.evaluation_rows == len(groups)

    def spearman_by_date(score, rows):
        return np.array([spearmanr(score[rows & (groups == g)], forward[rows & (groups == g)]).statistic
                         for g in np.unique(groups[rows])])

    every = np.ones(len(groups), dtype=bool)
    assert result.candidate["rank_ic"] == pytest.approx(spearman_by_date(cand, every).mean(), abs=1e-12)
    assert result.current["rank_ic"] == pytest.approx(spearman_by_date(curr, comparable).mean(), abs=1e-12)
    difference = spearman_by_date(cand, comparable) - spearman_by_date(curr, comparable)
    assert result.paired["mean_difference"] == pytest.approx(difference.mean(), abs=1e-12)
    assert result.paired["n_dates"] == 20 and result.paired["t_stat"] > 2


def test_the_held_out_bars_are_the_last_labelled_ones():
    bars = np.repeat(np.arange(10), 3)
    labelled = bars < 8  # the last two bars' labels have not ended
    np.testing.assert_array_equal(holdout_bars(bars, labelled, 3), [5, 6, 7])


def test_history_is_the_store_until_the_topic_begins_then_the_topic():
    def frame(symbols, days, close):
        ts = np.repeat(1_600_000_000_000 + np.asarray(days) * 86_400_000, len(symbols))
        return pd.DataFrame({"symbol": np.tile(symbols, len(days)), "ts": ts, "open": close, "high": close,
                             "low": close, "close": close, "volume": 1.0})

    store = frame(["A", "B"], range(0, 10), 1.0)
    topic = frame(["A", "B"], range(7, 12), 2.0)
    merged = merge_history(store, topic)
    days = (merged["ts"] - 1_600_000_000_000) // 86_400_000
    assert days.tolist() == sorted(days.tolist()) and set(days) == set(range(12))
    assert (merged.loc[days < 7, "close"] == 1.0).all() and (merged.loc[days >= 7, "close"] == 2.0).all()
    assert not merged.duplicated(["symbol", "ts"]).any()
    assert (merged["date"] == pd.to_datetime(merged["ts"], unit="ms")).all()
    assert merged["row"].tolist() == list(range(len(merged)))
    assert merge_history(None, topic)["close"].eq(2.0).all()
    assert len(merge_history(store, topic.iloc[0:0])) == len(store)


def test_a_history_too_short_for_the_walk_forward_and_the_held_out_year_is_refused(tmp_path):
    days = pd.bdate_range("2020-01-01", periods=600)
    bars = pd.DataFrame({"date": np.repeat(days, 2), "symbol": ["A", "B"] * 600, "open": 1.0, "high": 1.0,
                         "low": 1.0, "close": 1.0, "volume": 1.0})
    path = tmp_path / "bars.parquet"
    bars.to_parquet(path)
    short = RetrainLoop(settings(), bars_path=str(path))
    with pytest.raises(DataError, match=r"600 bar times of history; the walk-forward needs training.train_period "
                                        r"\(504\) \+ the gap \(6\) before retrain.evaluation_bars \(252\)"):
        short.history()


def test_only_qualifying_drift_events_about_the_set_in_service_trigger_a_retrain():
    retrain = loop(min_severity="critical", kinds=["ic_decay"])
    assert retrain.qualifies(event(), "ms-1") is None
    assert "below retrain.min_severity" in retrain.qualifies(event(severity="warning"), "ms-1")
    assert "not in retrain.kinds" in retrain.qualifies(event(kind="adwin"), "ms-1")
    assert "not the one in service" in retrain.qualifies(event(model_set="ms-0"), "ms-1")
    retrain.last_retrain_at = __import__("time").monotonic()
    assert "cooldown" in retrain.qualifies(event(), "ms-1")
