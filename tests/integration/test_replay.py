"""Replay of the bundled data through the real broker: nothing lost, nothing doubled."""

import base64

import msgspec
import pytest

from signalml.contracts import Bar, DeadLetter
from stream.bars_file import read_bars
from stream.replay import replay
from tests.conftest import DATA
from stream.topic_reader import read_topic
from tests.integration.kafka_helpers import scratch_topics

pytestmark = pytest.mark.integration

# Row numbers in the bundled file of the defects its README lists, plus two
# bars of the final day whose open lies above the high.
EXPECTED_DEAD_LETTERS = {
    335229: ("DXC", "close_out_of_range"),
    485060: ("CBS", "non_positive_price"),  # the all-zero duplicate of CBS 2019-12-04
    485359: ("VIAB", "duplicate_ts"),
    486107: ("STI", "duplicate_ts"),
    494758: ("CBOE", "open_out_of_range"),
    494798: ("DIS", "open_out_of_range"),
}


def test_every_bundled_bar_lands_once_on_bars_or_on_the_dlq_with_its_reason(stack, settings):
    frame = read_bars(DATA)
    assert len(frame) == 495_081
    bootstrap = settings.kafka.bootstrap_servers
    with scratch_topics(bootstrap, "bars", "bars.dlq", partitions=4) as (bars_topic, dlq_topic):
        summary = replay(settings, frame, source_file=DATA, bars_topic=bars_topic, dlq_topic=dlq_topic)
        published = read_topic(bootstrap, bars_topic)
        dead = read_topic(bootstrap, dlq_topic)

    assert summary.rows == 495_081
    assert summary.published == 495_081 - len(EXPECTED_DEAD_LETTERS)
    assert sum(summary.rejected.values()) == len(EXPECTED_DEAD_LETTERS)

    letters = [msgspec.json.decode(m.value(), type=DeadLetter) for m in dead]
    assert {d.source_row: (d.symbol, d.reason) for d in letters} == EXPECTED_DEAD_LETTERS
    assert len(letters) == len(EXPECTED_DEAD_LETTERS)
    for letter, message in zip(letters, dead):
        assert letter.source_file == str(DATA) and letter.detail
        original = msgspec.json.decode(base64.b64decode(letter.original_b64))
        assert original["symbol"] == letter.symbol == message.key().decode()

    bars = [msgspec.json.decode(m.value(), type=Bar) for m in published]
    assert len(bars) == summary.published
    assert all(m.key().decode() == b.symbol for m, b in zip(published, bars))
    received = {(b.symbol, b.ts): b.close for b in bars}
    assert len(received) == len(bars), "a bar arrived twice"
    valid = frame[~frame["row"].isin(EXPECTED_DEAD_LETTERS)]
    expected = dict(zip(zip(valid["symbol"], valid["ts"]), valid["close"]))
    assert received == expected


def test_bars_of_one_symbol_arrive_in_bar_time_order(stack, settings):
    frame = read_bars(DATA, symbols=["AAPL", "MSFT", "XOM"], start="2019-01-01")
    bootstrap = settings.kafka.bootstrap_servers
    with scratch_topics(bootstrap, "bars", "bars.dlq", partitions=4) as (bars_topic, dlq_topic):
        replay(settings, frame, source_file=DATA, bars_topic=bars_topic, dlq_topic=dlq_topic)
        published = read_topic(bootstrap, bars_topic)
    by_symbol: dict[str, list[int]] = {}
    for message in published:
        bar = msgspec.json.decode(message.value(), type=Bar)
        by_symbol.setdefault(bar.symbol, []).append(bar.ts)
    assert set(by_symbol) == {"AAPL", "MSFT", "XOM"}
    for ts in by_symbol.values():
        assert ts == sorted(ts) and len(ts) == len(frame) // 3
