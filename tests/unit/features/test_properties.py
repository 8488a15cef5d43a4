"""Random bar streams with gaps, joins, leaves and invalid bars: no crash,
counts right, and every symbol's features equal a reference that runs that
symbol's valid bars alone (cross-sectional alphas: equal to ranking the
reference's inputs over the same bar time)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signalml.config import FeatureSettings
from stream.features import FeatureEngine
from stream.features.bars import bar_defect

SETTINGS = FeatureSettings(lookbacks=(2, 3, 5), macd={"fast": 2, "slow": 4, "signal": 2})
SYMBOLS = ["A", "B", "C", "D"]
N_SYMBOL_FEATURES = len(FeatureEngine(SETTINGS).feature_names) - len(SETTINGS.alphas)

price = st.floats(min_value=1.0, max_value=200.0, allow_nan=False)
bad_value = st.sampled_from([float("nan"), float("inf"), 0.0, -1.0])


@st.composite
def bar_events(draw):
    """(ts, symbol, open, high, low, close, volume) in arrival order; ts mostly
    increasing per bar time, with repeats and stragglers."""
    events = []
    ts = 0
    for _ in range(draw(st.integers(1, 40))):
        ts += draw(st.integers(1, 3))
        present = draw(st.lists(st.sampled_from(SYMBOLS), min_size=0, max_size=5))  # gaps, duplicates
        for symbol in present:
            low = draw(price)
            high = low * draw(st.floats(1.0, 1.1))
            close = low + (high - low) * draw(st.floats(0.0, 1.0))
            open_ = low + (high - low) * draw(st.floats(0.0, 1.0))
            volume = draw(st.sampled_from([0.0, 1.0, 1000.0, 12345.5]))
            fields = [open_, high, low, close, volume]
            if draw(st.integers(0, 9)) == 0:  # an invalid bar
                fields[draw(st.integers(0, 4))] = draw(bad_value)
            bar_ts = ts - draw(st.sampled_from([0, 0, 0, 0, 1, 5]))  # some late ones
            events.append((bar_ts, symbol, *fields))
    leave_after = draw(st.sampled_from([None, len(events) // 2]))
    return events, leave_after


def _expected_acceptance(events, leave_after):
    """Validator semantics by hand: defects first, then ts strictly after the
    symbol's last applied ts (forgotten symbols start over)."""
    last, accepted, reasons = {}, [], {}
    for i, (ts, symbol, *fields) in enumerate(events):
        if leave_after is not None and i == leave_after:
            last.pop("A", None)
        reason = bar_defect(*fields)
        if reason is None and symbol in last:
            reason = "duplicate_ts" if ts == last[symbol] else "out_of_order_ts" if ts < last[symbol] else None
        if reason is None:
            last[symbol] = ts
            accepted.append(i)
        else:
            reasons[reason] = reasons.get(reason, 0) + 1
    return accepted, reasons


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bar_events())
def test_random_streams_match_a_per_symbol_reference(stream):
    events, leave_after = stream
    engine = FeatureEngine(SETTINGS)
    outputs = {}
    for i, (ts, symbol, *fields) in enumerate(events):
        if leave_after is not None and i == leave_after:
            engine.forget("A")
        outputs[i] = engine.update_bar(symbol, ts, *fields)

    accepted, reasons = _expected_acceptance(events, leave_after)
    counts = engine.counts
    assert counts["bars_received"] == len(events)
    assert counts["bars_applied"] == len(accepted)
    assert {r: n for r, n in counts["rejected"].items() if n} == reasons

    # Every rejected bar came back all NaN.
    for i in set(range(len(events))) - set(accepted):
        assert np.isnan(outputs[i]).all()

    # Per-symbol features equal a fresh engine fed that symbol's applied bars alone.
    epochs = {}  # a forgotten symbol's later bars form a new history
    for i in accepted:
        symbol = events[i][1]
        epoch = int(symbol == "A" and leave_after is not None and i >= leave_after)
        epochs.setdefault((symbol, epoch), []).append(i)
    for indices in epochs.values():
        alone = FeatureEngine(SETTINGS)
        for i in indices:
            ts, symbol, *fields = events[i]
            expected = alone.update_bar(symbol, ts, *fields)
            assert np.array_equal(outputs[i][:N_SYMBOL_FEATURES], expected[:N_SYMBOL_FEATURES], equal_nan=True)
            # alpha_101 needs no cross-section
            assert np.array_equal(outputs[i][-1:], expected[-1:], equal_nan=True)


@settings(max_examples=30, deadline=None)
@given(bar_events())
def test_snapshot_anywhere_continues_identically(stream):
    from stream.features import dumps, loads

    events, _ = stream
    straight, interrupted = FeatureEngine(SETTINGS), FeatureEngine(SETTINGS)
    cut = len(events) // 2
    for i, (ts, symbol, *fields) in enumerate(events):
        if i == cut:
            interrupted = FeatureEngine.from_state(loads(dumps(interrupted.state())))
        a = straight.update_bar(symbol, ts, *fields)
        b = interrupted.update_bar(symbol, ts, *fields)
        assert np.array_equal(a, b, equal_nan=True)
    assert straight.counts == interrupted.counts


def test_nan_and_inf_never_leak_into_state():
    engine = FeatureEngine(SETTINGS)
    for t in range(30):
        engine.update_bar("A", t, 10 + t, 11 + t, 9 + t, 10.5 + t, 100)
        engine.update_bar("A", t, math.nan, 1, 1, 1, 1)  # rejected either way
    values = engine.update_bar("A", 100, 50, 51, 49, 50, 100)
    assert np.isfinite(values).all()
