"""Percentile ranks of a cross-section, against pandas' own ranking."""

import numpy as np
import pandas as pd
from hypothesis import given, strategies as st

from stream.signals import build_signals, percentile_ranks


@given(st.lists(st.one_of(st.sampled_from([0.0, 1.0, -1.0, np.nan]), st.floats(-5, 5)), min_size=1, max_size=60))
def test_percentile_ranks_equal_pandas_average_ranks_with_ties_and_nans(values):
    scores = np.array(values, dtype=np.float64)
    expected = pd.Series(scores).rank(method="average", pct=True).to_numpy()  # NaN stays NaN, ties share
    np.testing.assert_array_equal(np.isnan(percentile_ranks(scores)), np.isnan(expected))
    np.testing.assert_allclose(percentile_ranks(scores), expected, rtol=0, atol=1e-15)


def test_signals_carry_the_cross_section_size_and_the_rank_of_their_own_score():
    signals = build_signals(5, ["A", "B", "C", "D"], np.array([0.5, -1.0, 0.5, 2.0]),
                            {"m": np.array([1.0, 2.0, 3.0, 4.0])}, "ms-1", 5)
    assert [(s.symbol, s.rank, s.cross_section_size, s.members["m"]) for s in signals] == [
        ("A", 0.625, 4, 1.0), ("B", 0.25, 4, 2.0), ("C", 0.625, 4, 3.0), ("D", 1.0, 4, 4.0)]


def test_a_cross_section_record_aligns_the_signals_scores_with_every_bar_and_leaves_the_unscored_empty():
    from stream.signals import build_record, build_signals

    signals = build_signals(7, ["B", "D"], np.array([0.5, np.nan]), {"m1": np.array([1.0, 2.0])}, "ms-1", 5)
    record = build_record(7, "champion", ["A", "B", "C", "D"], [10.0, 11.0, 12.0, 13.0], signals, "ms-1", 5)
    assert (record.ts, record.role, record.model_set, record.horizon_bars) == (7, "champion", "ms-1", 5)
    assert record.symbols == ["A", "B", "C", "D"] and record.closes == [10.0, 11.0, 12.0, 13.0]
    assert record.score == [None, 0.5, None, None]  # NaN is not JSON: no score
    assert record.members == {"m1": [None, 1.0, None, 2.0]}


def test_a_cross_section_without_signals_carries_its_closes_and_no_model_set():
    from stream.signals import build_record

    record = build_record(7, "challenger", ["A", "B"], [10.0, 11.0], [], "ms-1", 5)
    assert (record.model_set, record.horizon_bars, record.score, record.members) == ("", 0, [None, None], {})
    assert record.closes == [10.0, 11.0]
