"""Read a topic from the beginning to its current end: for checks, tools and benchmarks."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Message, TopicPartition

from signalml.errors import ServiceError


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    timeout_s: float = 120.0,
    isolation: str = "read_committed",
    batch: int = 10_000,
) -> list[Message]:
    """Every message of ``topic`` up to the end offsets seen at call time,
    in partition order. ``read_committed`` hides aborted transactions."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"signalml-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "fetch.max.bytes": 52_428_800,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise ServiceError(f"topic {topic!r} not found on {bootstrap}")
        partitions = [TopicPartition(topic, p, 0) for p in sorted(metadata.partitions)]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in partitions}
        consumer.assign(partitions)
        messages: list[Message] = []
        done = {p for p, end in ends.items() if end == 0}
        deadline = time.monotonic() + timeout_s
        while len(done) < len(ends):
            if time.monotonic() > deadline:
                raise ServiceError(f"reading {topic}: {len(messages)} messages before the {timeout_s:.0f} s deadline")
            for msg in consumer.consume(num_messages=batch, timeout=1.0):
                if msg.error():
                    raise ServiceError(f"reading {topic}: {msg.error()}")
                partition, offset = msg.partition(), msg.offset()
                if offset < ends[partition]:
                    messages.append(msg)
                if offset >= ends[partition] - 1:
                    done.add(partition)
        return messages
    finally:
        consumer.close()
