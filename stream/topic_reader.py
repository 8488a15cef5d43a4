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
