"""Percentile ranks of a cross-section, against pandas' own ranking."""

import numpy as np
import pandas as pd
from hypothesis import example, given, strategies as st

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


# ---------------------------------------------------------------- a cross-section's signals as columns

from signalml.contracts import Signal, encode  # noqa: E402
from stream.signals import CrossSectionSignals, build_record, signal_messages  # noqa: E402

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 5e-324, 1e16, 1e22]))
names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=8)
tickers = st.text("ABCXYZ019.-/^=_", min_size=1, max_size=6)


@st.composite
def cross_sections(draw):
    symbols = draw(st.lists(tickers, min_size=0, max_size=12, unique=True))
    column = st.lists(numbers, min_size=len(symbols), max_size=len(symbols))
    members = draw(st.dictionaries(names, column, max_size=4))
    return (draw(st.integers(0, 32503680000000)), symbols, draw(column), draw(column), members,
            draw(names), draw(st.integers(0, 1000)))


@given(cross_sections())
@example((1, ["A", "B"], [0.5, float("nan")], [1.0, -0.0], {"m%s": [2.0, 1e22]}, "ms-%b%", 5))
def test_a_cross_sections_messages_are_its_signals_each_encoded_by_the_contract(case):
    ts, symbols, scores, ranks, members, model_set, horizon = case
    expected = [
        Signal(ts=ts, symbol=symbol, score=scores[i], rank=ranks[i],
               members={name: values[i] for name, values in members.items()}, model_set=model_set,
               cross_section_size=len(symbols), horizon_bars=horizon)
        for i, symbol in enumerate(symbols)
    ]
    signals = CrossSectionSignals(ts, symbols, np.array(scores), np.array(ranks),
                                  {name: np.array(values) for name, values in members.items()}, model_set, horizon)
    assert signals.messages() == [(s.symbol.encode(), encode(s)) for s in expected]
    # repr: NaN equals NaN there, and each float is written exactly
    assert [repr(s) for s in signals] == [repr(s) for s in expected] and len(signals) == len(expected)


def test_float32_member_scores_are_published_as_their_float64_values():
    member = np.array([0.1, -2.5e-8, np.nan], dtype=np.float32)
    signals = build_signals(9, ["A", "B", "C"], np.array([1.0, 2.0, 3.0]), {"lstm": member}, "ms-1", 5)
    assert [s.members["lstm"] for s in signals][:2] == [float(member[0]), float(member[1])]
    assert signals.messages() == signal_messages(list(signals))
    assert b'"members":{"lstm":null}' in signals.messages()[2][1]


def test_a_cross_section_record_from_columns_equals_the_record_from_signal_objects():
    signals = build_signals(7, ["B", "D", "E"], np.array([0.5, np.nan, -1.0]),
                            {"m2": np.array([1.0, 2.0, np.inf]), "m1": np.array([3.0, 4.0, 5.0])}, "ms-1", 5)
    symbols, closes = ["A", "B", "C", "D", "E"], [10.0, 11.0, 12.0, 13.0, 14.0]
    fast = build_record(7, "champion", symbols, closes, signals, "ms-1", 5)
    assert fast == build_record(7, "champion", symbols, closes, list(signals), "ms-1", 5)
    assert fast.score == [None, 0.5, None, None, -1.0] and list(fast.members) == ["m1", "m2"]
    assert fast.members["m2"] == [None, 1.0, None, 2.0, None]


def test_an_empty_cross_section_has_no_messages_and_a_record_without_scores():
    signals = build_signals(7, [], np.array([]), {"m": np.array([])}, "ms-1", 5)
    assert signals.messages() == [] and list(signals) == []
    record = build_record(7, "champion", ["A"], [10.0], signals, "ms-1", 5)
    assert (record.model_set, record.score, record.members) == ("", [None], {})
