"""FeatureEngine behaviour: bad bars, ordering, symbols joining and leaving,
snapshots, counts."""

from __future__ import annotations

import numpy as np
import pytest

from signalml.config import FeatureSettings
from stream.features import (
    REASONS,
    FeatureEngine,
    SnapshotError,
    SnapshotVersionError,
    bar_defect,
    bar_defect_codes,
    dumps,
    feature_names,
    loads,
)


def bar(close=10.0, volume=100.0):
    return dict(open=close, high=close * 1.01, low=close * 0.99, close=close, volume=volume)


def xs(engine, ts, symbols, closes, **overrides):
    fields = {k: [bar(c)[k] for c in closes] for k in ("open", "high", "low", "close", "volume")}
    fields.update(overrides)
    return engine.update(ts, symbols, **fields)


@pytest.fixture
def engine(feature_settings):
    return FeatureEngine(feature_settings)


def test_feature_names_follow_the_configuration(feature_settings):
    names = feature_names(feature_settings)
    assert names[:4] == ("rsi_5", "rsi_10", "rsi_20", "rsi_60")
    assert names[-6:] == ("macd", "macd_signal", "macd_hist", "alpha_1", "alpha_42", "alpha_101")
    assert len(names) == 6 * 4 + 3 + 3
    custom = FeatureSettings(lookbacks=(3, 7), indicators=("ret", "rsi"), alphas=("alpha_101",))
    assert feature_names(custom) == ("ret_3", "ret_7", "rsi_3", "rsi_7", "macd", "macd_signal", "macd_hist", "alpha_101")
    assert FeatureEngine(custom).feature_names == feature_names(custom)


def test_update_returns_exactly_the_given_symbols_in_order(engine):
    frame = xs(engine, 1, ["B", "A", "C"], [1.0, 2.0, 3.0])
    assert list(frame.symbols) == ["B", "A", "C"]
    assert frame.values.shape == (3, len(engine.feature_names))
    assert frame.accepted.all()


def test_duplicate_and_out_of_order_bars_are_not_applied_and_are_counted(engine):
    xs(engine, 10, ["A", "B"], [1.0, 2.0])
    frame = xs(engine, 10, ["A"], [5.0])  # same ts again
    assert frame.reasons == ["duplicate_ts"] and np.isnan(frame.values).all()
    frame = xs(engine, 9, ["B"], [5.0])  # earlier ts
    assert frame.reasons == ["out_of_order_ts"]
    frame = xs(engine, 11, ["A", "A", "B"], [3.0, 4.0, 5.0])  # twice in one call: the first wins
    assert frame.reasons == [None, "duplicate_ts", None]
    counts = engine.counts
    assert counts["rejected"]["duplicate_ts"] == 2 and counts["rejected"]["out_of_order_ts"] == 1
    assert counts["bars_applied"] == 4 and counts["bars_received"] == 7
    assert engine.bars_seen(["A", "B"]).tolist() == [2, 2]


def test_defective_bars_update_nothing(engine, feature_settings):
    clean = FeatureEngine(feature_settings)
    xs(engine, 1, ["A"], [10.0])
    xs(clean, 1, ["A"], [10.0])
    bad = engine.update(2, ["A"] * 6, [10, 10, 10, 10, 12, 10], [11, 11, 9, 11, 11, 11], [9, 9, 10, 9, 9, 9],
                        [np.nan, 0.0, 9.5, 12, 10, 10], [1, 1, 1, 1, 1, -1])
    assert bad.reasons == ["non_finite", "non_positive_price", "high_below_low", "close_out_of_range",
                           "open_out_of_range", "negative_volume"]
    a, b = xs(engine, 3, ["A"], [11.0]), xs(clean, 3, ["A"], [11.0])
    assert np.array_equal(a.values, b.values, equal_nan=True)
    assert set(engine.counts["rejected"]) == set(REASONS[1:])


def test_a_defective_first_occurrence_lets_the_second_apply(engine):
    frame = engine.update(1, ["A", "A"], [10, 10], [11, 11], [9, 9], [np.nan, 10], [1, 1])
    assert frame.reasons == ["non_finite", None]


def test_bar_defect_names_the_first_defect_of_a_scalar_bar():
    assert bar_defect(10.0, 11.0, 9.0, 10.0, 5.0) is None
    assert bar_defect(10.0, 11.0, 9.0, 12.0, 5.0) == "close_out_of_range"
    assert bar_defect_codes([1.0], [1.0], [1.0], [1.0], [0.0]).tolist() == [0]


def test_symbols_join_leave_and_rows_are_reused(engine):
    xs(engine, 1, ["A", "B"], [1.0, 2.0])
    assert engine.forget("A") and not engine.forget("nope")
    xs(engine, 2, ["B", "C"], [2.0, 3.0])
    assert engine._registry.n_rows == 2  # C took A's row
    assert engine.bars_seen(["A", "B", "C"]).tolist() == [0, 2, 1]
    frame = xs(engine, 3, ["A"], [1.0])  # A rejoins as new
    assert frame.accepted.all() and engine.bars_seen(["A"]).tolist() == [1]
    counts = engine.counts
    assert (counts["symbols_joined"], counts["symbols_left"], counts["symbols_active"]) == (4, 1, 3)
    assert engine.forget_idle(3) == ["B", "C"]
    assert engine.symbols == ["A"]


def test_gaps_are_counted(engine):
    xs(engine, 1, ["A", "B"], [1.0, 2.0])
    xs(engine, 2, ["A"], [1.0])
    xs(engine, 3, ["A", "B"], [1.0, 2.0])  # B skipped bar time 2
    assert engine.counts["gaps"] == 1


def test_a_one_symbol_cross_section_works(engine):
    for t in range(100):
        frame = xs(engine, t, ["A"], [10.0 + np.sin(t)])
    assert not np.isnan(frame.values).any()
    assert frame.column("alpha_1")[0] == 0.5 and frame.column("alpha_42")[0] == 1.0
    assert engine.ready(["A", "Z"]).tolist() == [True, False]


def test_cross_section_ranks_over_every_symbol_of_the_bar_time(engine):
    engine.update_bar("A", 1, **bar(10.0))
    partial = engine.update_bar("B", 1, **bar(20.0))
    assert partial.shape == (len(engine.feature_names),)
    complete = engine.cross_section(1)
    assert list(complete.symbols) == ["A", "B"]
    assert complete.column("alpha_101").tolist() == pytest.approx([0.0, 0.0])


def test_snapshot_has_a_version_and_refuses_unknown_ones(engine):
    xs(engine, 1, ["A"], [1.0])
    state = engine.state()
    assert state["schema"] == "signalml.features.engine" and state["version"] == 2
    state["version"] = 99
    with pytest.raises(SnapshotVersionError, match="version 99 is not supported"):
        FeatureEngine.from_state(state)
    with pytest.raises(SnapshotError):
        loads(b'{"schema": "something else"}')
    with pytest.raises(SnapshotError):
        loads(b"not json")


def test_snapshot_with_other_settings_is_refused(engine):
    other = FeatureEngine(FeatureSettings(lookbacks=(5,)))
    with pytest.raises(SnapshotError, match="other feature settings"):
        other.restore(engine.state())


def test_snapshot_whose_state_machines_count_other_bars_is_refused(engine):
    from stream.features.codec import decode_array, encode_array

    xs(engine, 1, ["A", "B"], [1.0, 2.0])
    state = engine.state()
    state["bars_seen"] = encode_array(decode_array(state["bars_seen"]) + 1)
    with pytest.raises(SnapshotError, match="counts other bars"):
        FeatureEngine.from_state(state)


def test_one_bar_paths_agree(feature_settings):
    """update_bar, a one-symbol update and a cross-section give the same values."""
    closes = 10.0 + np.cumsum(np.random.default_rng(0).normal(0, 0.2, (80, 2)), axis=0)
    by_bar, by_call, together = (FeatureEngine(feature_settings) for _ in range(3))
    for t, (a, b) in enumerate(closes):
        both = xs(together, t, ["A", "B"], [a, b]).values
        one = [by_bar.update_bar(s, t, **bar(c)) for s, c in (("A", a), ("B", b))]
        two = [xs(by_call, t, [s], [c]).values[0] for s, c in (("A", a), ("B", b))]
        # Alphas rank over the symbols applied so far: A's over A alone, B's over both.
        assert np.array_equal(one[1], both[1], equal_nan=True) and np.array_equal(two[1], both[1], equal_nan=True)
        assert np.array_equal(one[0][:-3], both[0][:-3], equal_nan=True)
        assert np.array_equal(one[0], two[0], equal_nan=True)


def test_snapshot_is_plain_json(engine):
    xs(engine, 1, ["A", "B"], [1.0, 2.0])
    data = dumps(engine.state())
    assert isinstance(data, bytes) and b"pickle" not in data
    restored = FeatureEngine.from_state(loads(data))
    assert restored.counts == engine.counts and restored.symbols == engine.symbols


def test_reset_gives_a_fresh_engine(engine, feature_settings):
    xs(engine, 1, ["A"], [1.0])
    engine.reset()
    assert engine.symbols == [] and engine.counts["bars_received"] == 0


def test_inputs_are_not_mutated(engine):
    symbols = np.array(["A", "B"])
    arrays = [np.array([10.0, 20.0]), np.array([11.0, 21.0]), np.array([9.0, 19.0]), np.array([10.5, 20.5]), np.array([1.0, 2.0])]
    copies = [a.copy() for a in arrays]
    for t in range(30):
        engine.update(t, symbols, *arrays)
    assert all(np.array_equal(a, c) for a, c in zip(arrays, copies))
    assert symbols.tolist() == ["A", "B"]
