"""The benchmark runs and returns the figures the CLI prints (not timed)."""

from __future__ import annotations

import json


def test_bench_returns_json_ready_figures(feature_settings):
    from stream.bench_features import run

    result = run(feature_settings, quick=True)
    json.dumps(result)
    assert set(result["bar_updates_per_s"]) == {"xs_482", "xs_5000", "single_bar"}
    assert set(result["latency_us"]["xs_482"]) == {"p50", "p99"}
    assert set(result["ratio_vs"]) == {"talipp", "talib_stream", "pandas_recompute"}
    assert all(value > 0 for value in result["bar_updates_per_s"].values())
