"""The bar decoder: every bad message gets a reason, nothing raises."""

import base64
import json
import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from signalml.contracts import Bar, encode
from stream.decode import REASONS, BarValidator, Rejection, bar_problem, decode_bar
from stream.features.bars import bar_defect

GOOD = {"symbol": "AAPL", "ts": 1_600_000_000_000, "open": 10.0, "high": 11.0, "low": 9.5, "close": 10.5, "volume": 1000.0}


def message(**changes) -> bytes:
    fields = {**GOOD, **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()


def test_a_valid_bar_decodes_to_its_fields():
    bar = decode_bar(message(interval="1d"))
    assert bar == Bar("AAPL", 1_600_000_000_000, 10.0, 11.0, 9.5, 10.5, 1000.0, "1d")


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "unparseable"),
        (b"{not json", "unparseable"),
        (b"\xff\xfe\x00", "unparseable"),
        (b"[1, 2, 3]", "wrong_type"),
        (message(close=...), "missing_field"),
        (message(ts="yesterday"), "wrong_type"),
        (message(ts=1.6e12), "wrong_type"),
        (message(open=True), "wrong_type"),
        (message(symbol=""), "invalid_value"),
        (message(symbol="A" * 33), "invalid_value"),
        (message(symbol="BAD SYMBOL"), "invalid_value"),
        (message(ts=-1), "invalid_value"),
        (message(open=float("nan")), "non_finite"),
        (message(high=float("inf")), "non_finite"),
        (message(close=0.0, low=0.0), "non_positive_price"),
        (message(low=-1.0), "non_positive_price"),
        (message(high=9.0, low=9.5, close=9.2, open=9.2), "high_below_low"),
        (message(close=12.0), "close_out_of_range"),
        (message(close=9.0), "close_out_of_range"),
        (message(open=11.5), "open_out_of_range"),
        (message(volume=-5.0), "negative_volume"),
        (message(open=10.0, low=9.0, high=1e308, close=1e308), "price_out_of_range"),
        (message(open=2e-12, low=5e-324, high=2e-12, close=1e-12), "price_out_of_range"),
        (message(volume=2e18), "volume_out_of_range"),
        (b'{"symbol": "A", "ts": 1, "open": 1e999, "high": 2, "low": 1, "close": 1, "volume": 1}', "non_finite"),
        (b" " * 5000, "too_large"),
    ],
)
def test_each_defect_has_its_reason(payload, reason):
    result = decode_bar(payload)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.detail


def test_a_rejection_keeps_the_symbol_and_ts_when_they_were_readable():
    result = decode_bar(message(volume=-1.0))
    assert (result.symbol, result.ts) == ("AAPL", GOOD["ts"])


def test_zero_volume_is_a_valid_bar():
    assert isinstance(decode_bar(message(volume=0.0)), Bar)


def test_the_validator_rejects_duplicates_and_out_of_order_bars_per_symbol():
    validator = BarValidator()
    first = validator.validate(message(ts=2000))
    duplicate = validator.validate(message(ts=2000))
    earlier = validator.validate(message(ts=1000))
    other_symbol = validator.validate(message(symbol="MSFT", ts=1000))
    later = validator.validate(message(ts=3000))
    assert isinstance(first, Bar) and isinstance(other_symbol, Bar) and isinstance(later, Bar)
    assert (duplicate.reason, earlier.reason) == ("duplicate_ts", "out_of_order_ts")
    assert validator.counts == {"duplicate_ts": 1, "out_of_order_ts": 1}
    assert validator.accepted == 3


def test_a_rejected_bar_does_not_move_the_symbols_clock():
    validator = BarValidator()
    validator.validate(message(ts=1000))
    validator.validate(message(ts=5000, volume=-1.0))
    assert isinstance(validator.validate(message(ts=2000)), Bar)


def test_validator_state_round_trips_through_json():
    validator = BarValidator()
    for ts in (1000, 1000, 2000, 500):
        validator.validate(message(ts=ts))
    restored = BarValidator()
    restored.restore(msgspec.json.decode(msgspec.json.encode(validator.state())))
    assert restored.state() == validator.state()
    assert restored.validate(message(ts=2000)).reason == "duplicate_ts"


def test_the_feature_engines_vectorised_check_agrees_with_the_validator():
    rng = np.random.default_rng(7)
    n = 5000
    values = rng.choice([-1.0, 0.0, 1e-13, 1.0, 2.0, 3.0, 2e12, 2e18, np.nan, np.inf], size=(5, n))
    reasons = bar_defect(*values)
    for i in range(n):
        problem = bar_problem(*values[:, i])
        assert reasons[i] == (problem[0] if problem else None)


hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
    st.text(min_size=4000, max_size=5000),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(["symbol", "ts", "open", "high", "low", "close", "volume", "interval", "extra"]),
        hostile_values,
        max_size=9,
    )
)
def test_hostile_objects_never_raise_and_always_get_a_reason(fields):
    try:
        payload = json.dumps(fields).encode()
    except (ValueError, OverflowError):
        payload = repr(fields).encode()
    result = decode_bar(payload)
    assert isinstance(result, (Bar, Rejection))
    if isinstance(result, Rejection):
        assert result.reason in REASONS and result.detail
    else:
        assert bar_problem(result.open, result.high, result.low, result.close, result.volume) is None
        assert all(math.isfinite(v) for v in (result.open, result.high, result.low, result.close))


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=6000))
def test_random_bytes_never_raise(payload):
    result = BarValidator().validate(payload)
    assert isinstance(result, (Bar, Rejection))
    if isinstance(result, Rejection):
        assert result.reason in REASONS


@settings(max_examples=200, deadline=None)
@given(
    bar=st.builds(
        Bar,
        symbol=st.from_regex(r"[A-Z]{1,5}", fullmatch=True),
        ts=st.integers(min_value=0, max_value=2**41),
        open=st.floats(1, 1e6),
        high=st.floats(1, 1e6),
        low=st.floats(1, 1e6),
        close=st.floats(1, 1e6),
        volume=st.floats(0, 1e12),
    )
)
def test_encoding_then_decoding_gives_the_bar_or_its_consistency_problem(bar):
    result = decode_bar(encode(bar))
    problem = bar_problem(bar.open, bar.high, bar.low, bar.close, bar.volume)
    if problem is None:
        assert result == bar
    else:
        assert result.reason == problem[0]


def test_a_dead_letter_keeps_the_original_bytes_the_reason_and_the_kafka_position():
    from signalml.contracts import DeadLetter
    from stream.decode import dead_letter

    payload = message(volume=-1.0)
    letter = msgspec.json.decode(
        dead_letter(decode_bar(payload), payload, source_topic="bars", source_partition=2, source_offset=41),
        type=DeadLetter,
    )
    assert (letter.reason, letter.symbol, letter.ts) == ("negative_volume", "AAPL", GOOD["ts"])
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("bars", 2, 41)
    assert base64.b64decode(letter.original_b64) == payload
