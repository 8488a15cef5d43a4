"""``signalml bench e2e`` in quick mode: a private world, every phase runs,
the figures have their shape and every scored bar time produced signals."""

from __future__ import annotations

import pytest

from bench.e2e import run

pytestmark = pytest.mark.integration


def test_quick_e2e_bench_reports_every_figure_and_scores_every_bar_time(stack, settings):
    result = run(settings, quick=True)

    assert set(result["throughput_bars_per_s"]) == {"xs_40"}
    throughput = result["throughput"]["xs_40"]
    assert throughput["bars_per_s"] > 0
    assert throughput["all_scored_signals"], throughput
    assert throughput["signals"] == 40 * throughput["scored_bar_times"]

    latency = result["latency_ms"]["xs_40"]
    assert latency["missing_bar_times"] == 0, latency
    assert latency["n"] == 4
    assert 0 < latency["p50"] <= latency["p99"]
    # The engine ran as its own process and its stage timings came from its /metrics.
    assert {"features", "commit"} <= set(latency["engine_stage_mean_ms"]), latency
    # The floor commits the engine's own transactions again: its 40 signals, record and snapshot each.
    floor = result["latency_ms"]["kafka_transaction_floor"]
    assert floor["n"] == 4 and floor["messages"] == 40 and 0 < floor["p50"] <= floor["p99"], floor
    assert floor["record_bytes_mean"] > 0 and floor["snapshot_bytes_p50"] > 0, floor
    bare = result["latency_ms"]["kafka_transaction_floor_signals_offsets"]
    assert bare["n"] == 4 and bare["messages"] == 40, bare
    assert result["latency_vs_floor"] == {q: round(latency[q] / floor[q], 2) for q in ("p50", "p99")}

    assert result["naive_bars_per_s"] > 0 and result["naive"]["undelivered"] == 0
    assert result["ratio_vs_naive"] > 0
    assert len(result["members"]) >= 1
    assert isinstance(result["notes"], str) and result["notes"]
