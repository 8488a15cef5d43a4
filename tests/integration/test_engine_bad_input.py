"""Hostile messages produced straight to the engine's own bars topic, between
real bars: the engine stays up, dead-letters each exactly once with its
reason, its source offset and its original bytes (also across SIGKILLs that
land mid-stream), and its signals equal ``signalml predict`` on the clean
bars."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import msgspec
import pandas as pd
import pytest
from confluent_kafka import Producer

from signalml.contracts import Bar, DeadLetter, encode
from stream.bars_file import read_bars
from stream.replay import encode_bars, producer_config
from stream.topic_reader import read_topic
from tests.integration.engine_world import (
    DATA,
    assert_signals_equal_predict,
    committed_signals,
    new_tag,
    predicted,
    published_world,
    with_output,
)
from tests.integration.test_engine_determinism import run_with_kills

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


@dataclass
class Hostile:
    """A message produced between real bars: after the ``after``-th real bar
    (a fraction of them), to the partition of ``near`` (a symbol of the
    universe) or to ``partition``; what the engine must say of it."""

    name: str
    value: bytes | None
    reason: str
    after: float
    near: str | None = None


def bar_bytes(symbol: str, ts: int, **fields) -> bytes:
    values = {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 1000.0, **fields}
    return encode(Bar(symbol, ts, values["open"], values["high"], values["low"], values["close"], values["volume"]))


def hostile_messages(bars: pd.DataFrame) -> list[Hostile]:
    """The catalogue, placed through the backlog. Real symbols and bar times
    come from ``bars``; ``later`` is years ahead of the whole stream."""
    symbols = sorted(set(bars["symbol"]))
    first, later = int(bars["ts"].min()), int(bars["ts"].max()) + 400 * DAY_MS
    a, b, c = symbols[0], symbols[len(symbols) // 2], symbols[-1]
    nested = ('{"symbol": ' + "[" * 1500 + "]" * 1500 + ', "ts": 1, "open": 1, "high": 1, "low": 1, '
              '"close": 1, "volume": 1}').encode()
    mid_ts = int(sorted(set(bars["ts"]))[len(set(bars["ts"])) // 2])
    return [
        Hostile("not json", b"\xff\xfe{{garbage", "unparseable", 0.05, a),
        Hostile("truncated json", b'{"symbol": "AAPL", "ts": 15', "unparseable", 0.1, b),
        Hostile("empty value", b"", "unparseable", 0.12, c),
        Hostile("tombstone", None, "unparseable", 0.14, a),
        Hostile("a JSON array", b"[1, 2, 3]", "wrong_type", 0.16, b),
        Hostile("ts as text", b'{"symbol":"A","ts":"yesterday","open":1,"high":1,"low":1,"close":1,"volume":1}',
                "wrong_type", 0.18, c),
        Hostile("ts as a bool", b'{"symbol":"A","ts":true,"open":1,"high":1,"low":1,"close":1,"volume":1}',
                "wrong_type", 0.2, a),
        Hostile("deeply nested", nested, "wrong_type", 0.22, b),
        Hostile("oversized", b'{"symbol":"A","pad":"' + b"x" * 6000 + b'"}', "too_large", 0.24, c),
        Hostile("missing close", b'{"symbol":"A","ts":1,"open":1,"high":1,"low":1,"volume":1}', "missing_field",
                0.26, a),
        Hostile("NaN price", f'{{"symbol":"{b}","ts":{mid_ts},"open":NaN,"high":1,"low":1,"close":1,"volume":1}}'
                .encode(), "non_finite", 0.3, b),
        Hostile("bad symbol", bar_bytes("BAD SYMBOL", first), "invalid_value", 0.32, c),
        Hostile("ts beyond year 3000", b'{"symbol":"A","ts":99999999999999999,"open":1,"high":1,"low":1,'
                b'"close":1,"volume":1}', "invalid_value", 0.34, a),
        Hostile("zero price", bar_bytes(a, mid_ts, low=0.0), "non_positive_price", 0.36, a),
        Hostile("price of 1e308", bar_bytes(b, mid_ts, open=10.0, low=9.0, high=1e308, close=1e308),
                "price_out_of_range", 0.4, b),
        Hostile("volume of 1e30", bar_bytes(c, mid_ts, volume=1e30), "volume_out_of_range", 0.42, c),
        Hostile("negative volume", bar_bytes(a, mid_ts, volume=-5.0), "negative_volume", 0.44, a),
        Hostile("high below low", bar_bytes(b, mid_ts, high=8.0, low=9.0, close=8.5, open=8.5), "high_below_low",
                0.46, b),
        Hostile("a new symbol years ahead", bar_bytes("../../etc/passwd", later), "ts_ahead_of_stream", 0.5, a),
        Hostile("a real symbol years ahead", bar_bytes(b, later), "ts_ahead_of_stream", 0.55, b),
        Hostile("a real symbol's bar from the first day", bar_bytes(c, first), "out_of_order_ts", 0.6, c),
        Hostile("years ahead, last on its partition", bar_bytes("ZZZZ", later), "ts_ahead_of_stream", 1.0, c),
    ]


def produce_with_hostile(settings, bars: pd.DataFrame, hostile: list[Hostile]) -> dict[tuple[int, int], Hostile]:
    """Real bars in bar-time order (key = symbol, as replay sends them) with
    the hostile messages in between; returns (partition, offset) -> the
    hostile message there. A real bar right after its own copy would be a
    duplicate: the duplicate is one more hostile message."""
    topic = settings.kafka.topics.bars.name
    producer = Producer(producer_config(settings, **{"delivery.report.only.error": False}))
    payloads = encode_bars(bars)
    symbols = bars["symbol"].tolist()
    placed: dict[tuple[int, int], Hostile] = {}
    pending = sorted(hostile, key=lambda h: h.after)
    duplicate_at = len(payloads) // 3

    def sent(item):
        def callback(error, message) -> None:
            assert error is None, error
            if item is not None:
                placed[(message.partition(), message.offset())] = item
        return callback

    for i, payload in enumerate(payloads):
        while pending and pending[0].after * len(payloads) <= i:
            item = pending.pop(0)
            producer.produce(topic, item.value, item.near.encode(), on_delivery=sent(item))
        producer.produce(topic, payload, symbols[i].encode(), on_delivery=sent(None))
        if i == duplicate_at:
            copy = Hostile("a bar sent twice", payload, "duplicate_ts", 0.0, symbols[i])
            producer.produce(topic, payload, symbols[i].encode(), on_delivery=sent(copy))
        producer.poll(0)
    for item in pending:
        producer.produce(topic, item.value, item.near.encode(), on_delivery=sent(item))
    assert producer.flush(60) == 0
    assert len(placed) == len(hostile) + 1
    return placed


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    with published_world(tmp_path_factory.mktemp("bad-input")) as world:
        yield world


@pytest.fixture(scope="module")
def hostile_feed(world):
    settings = with_output(world["settings"], "hostile", own_bars=True)
    bars = read_bars(DATA, symbols=sorted(set(world["bars"]["symbol"])), start="2017-06-01")
    placed = produce_with_hostile(settings, bars, hostile_messages(bars))
    expected = predicted(world["settings"], world["tmp"], symbols=sorted(set(bars["symbol"])), start="2017-06-01")
    return {"settings": settings, "placed": placed, "expected": expected,
            "bar_times": sorted(set(bars["ts"].tolist()))}


def dead_letters(settings) -> list[DeadLetter]:
    topic = settings.kafka.topics.bars_dlq.name
    return [msgspec.json.decode(m.value(), type=DeadLetter) for m in read_topic(settings.kafka.bootstrap_servers, topic)]


def assert_each_hostile_message_dead_lettered_once(settings, placed) -> None:
    letters = dead_letters(settings)
    by_source = {}
    for letter in letters:
        key = (letter.source_partition, letter.source_offset)
        assert key not in by_source, f"dead-lettered twice: {key}"
        by_source[key] = letter
    assert set(by_source) == set(placed), sorted(set(by_source) ^ set(placed))
    for key, item in placed.items():
        letter = by_source[key]
        assert letter.reason == item.reason, (item.name, letter.reason, letter.detail)
        assert letter.source_topic == settings.kafka.topics.bars.name
        assert base64.b64decode(letter.original_b64) == (item.value or b""), item.name
        assert letter.detail


def test_hostile_messages_between_real_bars_are_dead_lettered_once_and_the_signals_equal_predict(world, hostile_feed):
    settings = with_output(hostile_feed["settings"], f"once-{new_tag()}")
    from stream.engine import Engine

    engine = Engine(settings)
    engine.run(idle_exit_s=3.0, serve_http=False)
    assert_each_hostile_message_dead_lettered_once(settings, hostile_feed["placed"])
    assert sum(engine.validator.counts.values()) == len(hostile_feed["placed"])
    assert_signals_equal_predict(committed_signals(settings), hostile_feed["expected"])


def test_across_sigkills_mid_stream_each_hostile_message_is_still_dead_lettered_exactly_once(world, hostile_feed):
    settings = with_output(hostile_feed["settings"], f"killed-{new_tag()}")
    kills = run_with_kills(settings, world["tmp"] / "hostile-killed.log", [0.3, 0.6], hostile_feed["bar_times"])
    assert all(0 < kill.closed < len(hostile_feed["bar_times"]) for kill in kills), kills
    assert_each_hostile_message_dead_lettered_once(settings, hostile_feed["placed"])
    assert_signals_equal_predict(committed_signals(settings), hostile_feed["expected"])
