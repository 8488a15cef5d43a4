"""The benchmark runs and returns the figures the CLI prints (not timed)."""

from __future__ import annotations

import json

from signalml.config import FeatureSettings


def test_bench_returns_json_ready_figures(feature_settings):
    from bench.features import run

    result = run(feature_settings, quick=True)
    json.dumps(result)
    for figure in ("bar_updates_per_s", "feature_updates_per_s"):
        assert set(result[figure]) == {"xs_482", "xs_5000", "single_bar"}
        assert all(value > 0 for value in result[figure].values())
    assert result["features"] == 30
    bars, features = result["bar_updates_per_s"]["xs_482"], result["feature_updates_per_s"]["xs_482"]
    assert abs(features - bars * 30) <= 1e-3 * features  # each rounded to 4 digits
    assert set(result["latency_us"]["xs_482"]) == {"p50", "p99"}
    assert set(result["ratio_vs"]) == {"talipp", "talib_stream", "pandas_recompute"}


def test_each_peer_is_measured_on_the_selected_features_it_offers():
    from bench.feature_peers import peer_subset

    names = ("KMID", "MA5", "STD5", "CORR5", "RSQR5", "rsi_5", "macd", "mkt_beta_20")
    assert peer_subset("talipp", names) == ("MA5", "STD5", "rsi_5", "macd")
    assert peer_subset("talib_stream", names) == ("MA5", "STD5", "CORR5", "rsi_5", "macd")
    assert peer_subset("pandas_recompute", names) == ("MA5", "STD5", "CORR5")


def test_the_peers_run_on_alpha158_features():
    from bench.feature_peers import RATES, peer_subset

    settings = FeatureSettings(feature_sets=("alpha158",))
    names = ("MA5", "STD10", "ROC5", "MAX5", "MIN5", "IMAX5", "IMIN5", "BETA5", "RESI5", "CORR5", "QTLU5",
             "QTLD5", "RANK5", "VMA5", "VSTD5")
    for peer, rate in RATES.items():
        assert rate(peer_subset(peer, names), settings, 1) > 0, peer
