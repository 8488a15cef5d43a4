"""Read a topic from the beginning to its current end: for checks, tools and benchmarks."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from signalml.errors import ServiceError


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    timeout_s: float = 120.0,
    isolation: str = "read_committed",
    batch: int = 10_000,
) -> list[Message]:
    """Every message of ``topic`` up to its end at call time, in partition
    order. ``read_committed`` hides aborted transactions; their records and
    the transaction markers still take offsets, so the end of a partition is
    known from the consumer's end-of-partition event, not from offsets."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"signalml-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "fetch.max.bytes": 52_428_800,
            "enable.partition.eof": True,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise ServiceError(f"topic {topic!r} not found on {bootstrap}")
        partitions = [TopicPartition(topic, p, 0) for p in sorted(metadata.partitions)]
        consumer.assign(partitions)
        messages: list[Message] = []
        done: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(partitions):
            if time.monotonic() > deadline:
                raise ServiceError(f"reading {topic}: {len(messages)} messages before the {timeout_s:.0f} s deadline")
            for msg in consumer.consume(num_messages=batch, timeout=1.0):
                error = msg.error()
                if error is None:
                    if msg.partition() not in done:
                        messages.append(msg)
                elif error.code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition())
                else:
                    raise ServiceError(f"reading {topic}: {error}")
        messages.sort(key=lambda m: (m.partition(), m.offset()))
        return messages
    finally:
        consumer.close()


def read_tail(
    bootstrap: str,
    topic: str,
    count: int,
    *,
    timeout_s: float = 3.0,
    isolation: str = "read_committed",
    logger: object | None = None,
) -> list[Message]:
    """The last ``count`` messages of ``topic`` at call time, oldest first
    (by timestamp across partitions). Never waits past ``timeout_s``: a
    broker that does not answer, a missing topic or a read that runs out of
    time raise :class:`ServiceError`.

    Offsets are not records: under ``read_committed`` aborted records and
    transaction markers take offsets too, so each partition is read from
    ``end - span`` and the span grows (x4) until it holds ``count`` records
    or reaches the partition's start."""
    from confluent_kafka import KafkaException

    if count <= 0:
        return []
    deadline = time.monotonic() + timeout_s
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": f"signalml-tail-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "isolation.level": isolation,
        "enable.partition.eof": True,
    }
    if logger is not None:
        config["logger"] = logger
    consumer = Consumer(config)

    def left_s() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ServiceError(f"reading the tail of {topic} on {bootstrap}: no answer within {timeout_s:g} s")
        return left

    try:
        try:
            metadata = consumer.list_topics(topic, timeout=left_s()).topics.get(topic)
        except KafkaException as exc:
            raise ServiceError(f"Kafka at {bootstrap} is down or not answering ({exc.args[0].str()})") from None
        if metadata is None or metadata.error is not None:
            raise ServiceError(f"topic {topic!r} not found on {bootstrap}")
        tail: list[Message] = []
        for partition in sorted(metadata.partitions):
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=left_s())
            except KafkaException as exc:
                raise ServiceError(f"Kafka at {bootstrap} is down or not answering ({exc.args[0].str()})") from None
            span = count
            while True:
                start = max(low, high - span)
                found = _read_partition(consumer, topic, partition, start, left_s)
                if len(found) >= count or start == low:
                    tail.extend(found[-count:])
                    break
                span *= 4
        tail.sort(key=lambda m: (m.timestamp()[1], m.partition(), m.offset()))
        return tail[-count:]
    finally:
        consumer.close()


def _read_partition(consumer: Consumer, topic: str, partition: int, start: int, left_s) -> list[Message]:
    """Records of one partition from offset ``start`` to its end (the last
    stable offset under ``read_committed``)."""
    consumer.assign([TopicPartition(topic, partition, start)])
    found: list[Message] = []
    while True:
        for msg in consumer.consume(num_messages=1000, timeout=min(0.5, left_s())):
            error = msg.error()
            if error is None:
                found.append(msg)
            elif error.code() == KafkaError._PARTITION_EOF:
                return found
            else:
                raise ServiceError(f"reading {topic}: {error}")
