"""The saturation benchmark's line fit: milliseconds per cross-section as a
fixed cost plus a cost per symbol."""

from __future__ import annotations

import pytest

from bench.saturation import fit


def points(fixed_ms: float, per_symbol_us: float, sizes=(100, 500, 2000, 5000), noise=()) -> list[dict]:
    noise = list(noise) or [0.0] * len(sizes)
    return [{"symbols": n, "ms_per_cross_section": fixed_ms + per_symbol_us * n / 1000 + e}
            for n, e in zip(sizes, noise)]


def test_a_cost_that_is_a_line_in_the_universe_size_is_recovered_exactly():
    got = fit(points(fixed_ms=12.0, per_symbol_us=55.0))
    assert got["fixed_ms"] == pytest.approx(12.0, abs=0.01)
    assert got["per_symbol_us"] == pytest.approx(55.0, abs=0.01)
    assert got["max_relative_error"] == pytest.approx(0.0, abs=1e-3)


def test_the_worst_relative_miss_of_the_line_is_reported():
    # 10 % above the line at 100 symbols pulls the fit towards it; about half the miss stays visible.
    got = fit(points(fixed_ms=10.0, per_symbol_us=20.0, noise=(1.2, 0.0, 0.0, 0.0)))
    assert 0.03 < got["max_relative_error"] < 0.1
