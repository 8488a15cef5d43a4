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
