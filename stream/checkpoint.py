"""Exactly-once output: signals, dead letters, a state snapshot and the consumed
offsets committed in one Kafka transaction.

The engine opens a transaction, produces what a batch of bars yields, then
:meth:`Checkpoint.commit` adds the snapshot (topic ``engine.state``, key =
the engine's id) and the consumer's positions, and commits. A crash before
the commit aborts everything of the batch (``read_committed`` readers never
see it); on restart the engine restores the last committed snapshot and the
consumer group resumes at the offsets committed with it, so the batch is
processed again, once.

The ``transactional.id`` is stable per engine id: a restarted engine fences
any zombie instance of itself.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from signalml.config import Settings
from signalml.errors import ServiceError


class Checkpoint:
    """A transactional producer bound to one consumer's group."""

    def __init__(self, settings: Settings, consumer: Consumer, engine_id: str, *, timeout_s: float = 30.0):
        self.settings = settings
        self.consumer = consumer
        self.engine_id = engine_id
        self.state_topic = settings.kafka.topics.engine_state.name
        self.timeout_s = timeout_s
        self.producer = Producer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "transactional.id": f"signalml-engine-{engine_id}",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 1,
                "compression.type": "lz4",
                "message.max.bytes": 67_108_864,
                "transaction.timeout.ms": 60_000,
            }
        )
        self._call(self.producer.init_transactions, timeout_s)
        self.open = False

    def begin(self) -> None:
        if not self.open:
            self._call(self.producer.begin_transaction)
            self.open = True

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        """Produce inside the open transaction."""
        self.begin()
        while True:
            try:
                self.producer.produce(topic, value, key)
                return
            except BufferError:
                self.producer.poll(0.01)

    def commit(self, snapshot: bytes, *, base: bytes | None = None) -> None:
        """Snapshot (and, when given, a new base state under
        :func:`base_key`) + consumer positions + everything produced since
        :meth:`begin`, atomically."""
        self.begin()
        if base is not None:
            self.produce(self.state_topic, base_key(self.engine_id), base)
        self.produce(self.state_topic, self.engine_id.encode(), snapshot)
        positions = [tp for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0]
        self._call(
            self.producer.send_offsets_to_transaction,
            positions,
            self.consumer.consumer_group_metadata(),
            self.timeout_s,
        )
        self._call(self.producer.commit_transaction, self.timeout_s)
        self.open = False

    def abort(self) -> None:
        if self.open:
            self._call(self.producer.abort_transaction, self.timeout_s)
            self.open = False

    def _call(self, method, *args):
        try:
            return method(*args)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            raise ServiceError(f"kafka transaction: {method.__name__} failed: {error.str()}") from None


def base_key(engine_id: str) -> bytes:
    """Key of an engine's base state on the state topic ('/' cannot occur in
    an engine id, so no engine's snapshot key collides with it)."""
    return f"{engine_id}/base".encode()


def latest_snapshot(settings: Settings, engine_id: str, *, timeout_s: float = 30.0) -> bytes | None:
    """The last committed snapshot of ``engine_id`` on the state topic, or None."""
    return latest_records(settings, [engine_id.encode()], timeout_s=timeout_s).get(engine_id.encode())


def latest_records(settings: Settings, keys: list[bytes], *, timeout_s: float = 30.0) -> dict[bytes, bytes]:
    """The last committed value of each of ``keys`` on the state topic (keys
    never written are absent).

    Reads backwards in growing steps from the end of the (single-partition,
    compacted) topic, so start-up does not read the whole history.
    """
    topic = settings.kafka.topics.engine_state.name
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"signalml-restore-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.max.bytes": 134_217_728,
            "max.partition.fetch.bytes": 67_108_864,
        }
    )
    wanted = set(keys)
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
        step = 16
        while True:
            start = max(low, high - step)
            consumer.assign([TopicPartition(topic, 0, start)])
            found: dict[bytes, bytes] = {}
            deadline = time.monotonic() + timeout_s
            while True:
                msg = consumer.poll(1.0)
                if msg is None:
                    if time.monotonic() > deadline:
                        raise ServiceError(f"reading {topic}: no end of partition within {timeout_s:.0f} s")
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        break
                    raise ServiceError(f"reading {topic}: {msg.error()}")
                if msg.key() in wanted:
                    found[msg.key()] = msg.value()
            if len(found) == len(wanted) or start == low:
                return found
            step *= 4
    finally:
        consumer.close()
