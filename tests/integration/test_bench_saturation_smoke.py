"""``signalml bench saturation`` in quick mode: a private world, one engine
per universe size over a backlog, every scored bar time timed and fitted."""

from __future__ import annotations

import pytest

from bench.saturation import run

pytestmark = pytest.mark.integration


def test_quick_saturation_bench_times_every_size_and_fits_the_line(stack, settings):
    result = run(settings, quick=True)

    assert [p["symbols"] for p in result["points"]] == [40, 120]
    for point in result["points"]:
        assert point["commits"] >= 2 and point["cross_sections_per_s"] > 0, point
        assert point["bars_per_s"] == pytest.approx(point["cross_sections_per_s"] * point["symbols"], rel=0.01)
    assert set(result["saturation_bar_times_per_s"]) == {"xs_40", "xs_120"}
    assert result["fit"]["max_relative_error"] >= 0
    assert isinstance(result["notes"], str) and result["notes"]
