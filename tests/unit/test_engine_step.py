"""One engine step over what a consumer delivered: the bars of a backlog give
the same feature state however the consumer cut them into batches. Kafka is
not needed for this: the messages come from a list, the transaction is
recorded (the integration tests run the same steps on the real broker)."""

from __future__ import annotations

import time

import msgspec
import numpy as np
import pytest
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from signalml.config import load_settings
from signalml.contracts import Bar, encode
from stream.engine import Engine
from tests.conftest import REPO
from tests.unit.test_engine_snapshot import drifting_model_set


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


# ---------------------------------------------------------------- requests in flight across commits


class RawMessage(Message):
    """A message whose value is not a bar (dead-lettered)."""

    def __init__(self, partition: int, offset: int, value: bytes):
        super().__init__(partition, offset, None)
        self._value = value

    def error(self):
        return None

    def key(self):
        return b"?"

    def value(self):
        return self._value


class Transactions:
    """Every committed transaction: what it produced (dead letters without
    their wall-clock stamp), its snapshot, and how many cross-sections the
    engine still had in flight behind it when it committed."""

    def __init__(self, dlq_topic: str):
        self.dlq_topic = dlq_topic
        self.open: list = []
        self.committed: list = []
        self.in_flight_at_commit: list[int] = []
        self.engine: Engine | None = None

    def produce(self, topic, key, value):
        if topic == self.dlq_topic:
            letter = msgspec.json.decode(value)
            letter.pop("rejected_at")
            value = msgspec.json.encode(letter)
        self.open.append((topic, key, value))

    def produce_many(self, topic, messages):
        for key, value in messages:
            self.produce(topic, key, value)

    def commit(self, snapshot, base_parts=None):
        self.committed.append((self.open, snapshot, base_parts, self.view()))
        self.in_flight_at_commit.append(self.engine.in_flight)
        self.open = []

    def view(self) -> tuple:
        """The query API's view as the previous commit left it."""
        view = self.engine.query.view
        rows = {symbol: (row.ts, row.bars_seen.tolist()) for symbol, row in view.features.items()}
        return view.last_bar_ts, view.last_signal_ts, rows, sorted((s, view.signals[s].ts) for s in view.signals)


def backlog(n_partitions: int = 3, n_symbols: int = 12, days: int = 40, seed: int = 3) -> list:
    """Each partition's symbols in bar-time order, the partitions interleaved
    at random, with undecodable messages among them."""
    rng = np.random.default_rng(seed)
    symbols = [f"S{i:02d}" for i in range(n_symbols)]
    streams = {p: [] for p in range(n_partitions)}
    for day in range(1, days + 1):
        for i, symbol in enumerate(symbols):
            price = 20.0 + i + day * rng.normal(0.1, 0.5) * 0.1 + rng.normal(0, 0.3)
            streams[i % n_partitions].append(Bar(symbol, 1_600_000_000_000 + day * 86_400_000, price,
                                                 price + 1, price - 1, price + rng.normal(0, 0.2), 1000.0 + day))
    for p, stream in streams.items():
        for at in rng.choice(len(stream), size=3, replace=False):
            stream.insert(int(at), b"not a bar")
    offsets = {p: 0 for p in streams}
    messages = []
    while any(streams.values()):
        p = int(rng.choice([q for q, s in streams.items() if s]))
        item = streams[p].pop(0)
        messages.append(RawMessage(p, offsets[p], item) if isinstance(item, bytes) else Message(p, offsets[p], item))
        offsets[p] += 1
    return messages + [Message(p, offsets[p], None) for p in streams]


def run_scored(messages: list, k: int, step_bars: int) -> Transactions:
    """A backlog through an engine serving a one-member model set whose
    requests take a random few milliseconds each (so they complete out of
    order), with up to ``k`` in flight and ``step_bars`` bars per step."""
    settings = load_settings(REPO / "signalml.yaml")
    serving = settings.serving.model_copy(update={"consume_batch": step_bars // k, "max_in_flight": k,
                                                  "warmup_bars": 3, "psi_window_bars": 4,
                                                  "commit_interval_s": 3600.0, "barrier_timeout_s": 3600.0})
    settings = settings.model_copy(update={"serving": serving})
    rng = np.random.default_rng(k)
    delays = iter(rng.uniform(0, 0.004, size=10_000))

    def scorer(model_set, tabular, sequences):
        time.sleep(next(delays))
        return {"lightgbm": np.nansum(tabular.astype(np.float64), axis=1)}

    engine = Engine(settings, scorer=scorer, registry=CollectorRegistry())
    engine.next_set = drifting_model_set(engine.pipeline.names)
    engine._switch_if_ready()
    transactions = Transactions(settings.kafka.topics.bars_dlq.name)
    transactions.engine = engine
    engine.consumer, engine.checkpoint, engine.control = ListConsumer(messages), transactions, NoControl()
    partitions = sorted({m.partition() for m in messages})
    engine.bars_topic, engine.partitions, engine.signals_topic = "bars", partitions, "signals"
    engine.barrier.assign(partitions)
    while engine.consumer.messages or engine.window:
        engine._step()
    if engine.scoring_pool is not None:
        engine.scoring_pool.shutdown()
    return transactions


@pytest.mark.parametrize("k", [2, 4])
def test_requests_in_flight_across_commits_commit_what_one_at_a_time_commits(k):
    """With K > 1 a step's last cross-sections are still being scored while
    the next step's bars are taken (and their cross-sections scored): every
    transaction must still hold exactly the signals, records, drift events,
    dead letters and snapshot of the bars before its cut, as with one
    request at a time."""
    one = run_scored(backlog(), 1, step_bars=48)
    many = run_scored(backlog(), k, step_bars=48)
    assert any(many.in_flight_at_commit), "no commit happened with a request in flight: nothing was overlapped"
    assert not any(one.in_flight_at_commit)
    assert {topic for produced, *_ in one.committed for topic, _, _ in produced} == {
        "signals", "bars.dlq", "drift", "cross.sections"}
    assert len(many.committed) == len(one.committed) > 5
    for i, (got, expected) in enumerate(zip(many.committed, one.committed)):
        # Each topic's messages in order (the order across topics is not one a reader sees).
        assert by_topic(got[0]) == by_topic(expected[0]), f"transaction {i}: other output"
        assert got[1] == expected[1], f"transaction {i}: other snapshot"
        assert got[2] == expected[2], f"transaction {i}: other base"
        assert got[3] == expected[3], f"transaction {i}: the query API showed another view before it"


def by_topic(produced: list) -> dict[str, list]:
    topics: dict[str, list] = {}
    for topic, key, value in produced:
        topics.setdefault(topic, []).append((key, value))
    return topics


def test_a_step_ends_a_transaction_once_commit_interval_s_has_passed_since_the_last_cut():
    """``commit_interval_s`` runs from the last cut. With cross-sections in
    flight the last commit can be much older than the last cut (its commit
    waits for them); timed from the commit, every step of a backlog that
    closes nothing would end a transaction of its own."""
    only_partition_0 = [m for m in backlog() if m.partition() == 0 and m.value() is not None][:30]
    settings = load_settings(REPO / "signalml.yaml")
    settings = settings.model_copy(update={"serving": settings.serving.model_copy(
        update={"consume_batch": 5, "max_in_flight": 4, "commit_interval_s": 60.0, "barrier_timeout_s": 3600.0})})
    engine = Engine(settings, scorer=lambda *_: {}, registry=CollectorRegistry())
    transactions = Transactions(settings.kafka.topics.bars_dlq.name)
    transactions.engine = engine
    engine.consumer, engine.checkpoint, engine.control = ListConsumer(only_partition_0), transactions, NoControl()
    engine.bars_topic, engine.partitions, engine.signals_topic = "bars", [0, 1, 2], "signals"
    engine.barrier.assign([0, 1, 2])  # partitions 1 and 2 say nothing: no cross-section closes
    engine.last_commit = time.monotonic() - 3600.0
    engine.last_cut = time.monotonic()
    engine._step()
    assert engine.uncommitted == 20 and not transactions.committed and not engine.window
    engine.last_cut = time.monotonic() - 61.0
    engine._step()
    assert engine.uncommitted == 0 and len(transactions.committed) == 1
    if engine.scoring_pool is not None:
        engine.scoring_pool.shutdown()
