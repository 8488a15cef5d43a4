"""One engine step over what a consumer delivered: the bars of a backlog give
the same feature state however the consumer cut them into batches. Kafka is
not needed for this: the messages come from a list, the transaction is
recorded (the integration tests run the same steps on the real broker)."""

from __future__ import annotations

import msgspec
import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from signalml.config import load_settings
from signalml.contracts import Bar, encode
from stream.engine import Engine
from tests.conftest import REPO


class Message:
    def __init__(self, partition: int, offset: int, bar: Bar | None):
        self._partition, self._offset, self._bar = partition, offset, bar

    def error(self):
        return KafkaError(KafkaError._PARTITION_EOF) if self._bar is None else None

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset

    def key(self):
        return self._bar.symbol.encode()

    def value(self):
        return encode(self._bar)


class ListConsumer:
    """Hands out ``messages`` in order, as many per call as asked for."""

    def __init__(self, messages: list[Message]):
        self.messages = list(messages)

    def poll(self, timeout=None):
        return self.messages.pop(0) if self.messages else None

    def consume(self, n, timeout=None):
        taken, self.messages = self.messages[:n], self.messages[n:]
        return taken

    def pause(self, partitions):
        pass

    def resume(self, partitions):
        pass

    def commit(self, offsets=None, asynchronous=True):
        pass


class RecordedTransaction:
    def __init__(self):
        self.produced: list[tuple[str, bytes, bytes]] = []
        self.commits = 0

    def produce(self, topic, key, value):
        self.produced.append((topic, key, value))

    def produce_many(self, topic, messages):
        self.produced += [(topic, key, value) for key, value in messages]

    def commit(self, snapshot, base_parts=None):
        self.commits += 1


class NoControl:
    def poll(self, timeout):
        return None


def bar(symbol: str, day: int) -> Bar:
    price = 10.0 + day + (0.5 if symbol == "S" else 0.0)
    return Bar(symbol, 1_600_000_000_000 + day * 86_400_000, price, price + 1, price - 1, price + 0.25, 1000.0 + day)


def run(messages: list[Message], batch: int) -> Engine:
    settings = load_settings(REPO / "signalml.yaml")
    settings = settings.model_copy(update={"serving": settings.serving.model_copy(update={"consume_batch": batch})})
    engine = Engine(settings, scorer=lambda *args: {}, registry=CollectorRegistry())
    engine.consumer, engine.checkpoint, engine.control = ListConsumer(messages), RecordedTransaction(), NoControl()
    engine.bars_topic, engine.partitions, engine.signals_topic = "bars", [0, 1], "signals"
    engine.barrier.assign([0, 1])
    while engine.consumer.messages:
        engine._step()
    return engine


def backlog_with_a_bar_behind_its_partition() -> list[Message]:
    """Partition 0 holds A and S, partition 1 holds B. In partition 0, S's bar
    of day 3 comes after A's of day 4: it is late (its partition has moved
    on) and applies to S's features. Day 2 closes (by watermark) at A's bar
    of day 4, just before S's late bar: S's bar of day 2 must apply first."""
    p0 = [bar("A", 1), bar("S", 1), bar("A", 2), bar("S", 2), bar("A", 4), bar("S", 3), bar("A", 5), bar("S", 5)]
    p1 = [bar("B", d) for d in (1, 2, 3, 4, 5)]
    order = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (0, 4), (0, 5), (1, 3), (1, 4), (0, 6), (0, 7)]
    messages = [Message(p, i, (p0, p1)[p][i]) for p, i in order]
    return messages + [Message(0, 8, None), Message(1, 5, None)]


@pytest.mark.parametrize("batch", [1, 2, 3, 8, 100])
def test_the_feature_state_after_a_backlog_does_not_depend_on_where_consume_batches_end(batch):
    reference = run(backlog_with_a_bar_behind_its_partition(), 1)
    engine = run(backlog_with_a_bar_behind_its_partition(), batch)
    assert engine.barrier.counts.late == reference.barrier.counts.late == 1
    assert [event[:3] for event in engine.pipeline.journal] == [event[:3] for event in reference.pipeline.journal]
    assert msgspec.msgpack.encode(engine.pipeline.state()) == msgspec.msgpack.encode(reference.pipeline.state())
    # S's bar of day 2 was applied (in its cross-section), then the late one of day 3.
    assert engine.pipeline.features._by_code[0] == 13
