"""``signalml bench api`` in quick mode: a private world, an engine with its
HTTP server, the load generator against the API and the baseline; the
figures have their shape and every answer carried all 500 symbols."""

from __future__ import annotations

import pytest

from bench.api import run

pytestmark = pytest.mark.integration


def test_quick_api_bench_reports_latency_and_throughput_of_the_api_and_its_baseline(stack, settings):
    result = run(settings, quick=True)

    assert result["symbols"] == 500 and result["body_bytes"] > 500 * 100
    figures = result["figures"]["connections_4"]
    assert set(figures) == {"api_all", "api_list", "baseline"}
    for name, figure in figures.items():
        assert figure["requests"] > 0, name
        assert 0 < figure["p50_ms"] <= figure["p99_ms"], name
    assert figures["api_list"]["rps_vs_baseline"] > 0
    assert result["engine_commits"] >= 1 and result["notes"]
