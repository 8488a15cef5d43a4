"""What both readers share: the consumer configuration, the topic's
partitions, and where a consumer group left off."""

from __future__ import annotations

import time
from typing import Callable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from signalml.errors import ServiceError

# Below zero, a committed offset is librdkafka's "none committed" (OFFSET_INVALID).
NO_OFFSET = -1001


def reader_consumer(bootstrap: str, group_id: str, *, isolation: str = "read_committed") -> Consumer:
    """A consumer that commits only what the reader commits itself, and
    reports the end of each partition (how a reader knows it is caught up)."""
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": isolation,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })


def kafka_call(what: str, bootstrap: str, call: Callable):
    """``call()``, with a broker that does not answer raised as :class:`ServiceError`."""
    try:
        return call()
    except KafkaException as exc:
        raise ServiceError(f"{what} on Kafka at {bootstrap}: {exc.args[0].str()}") from None


def partitions_of(consumer: Consumer, bootstrap: str, topic: str, timeout_s: float) -> list[int]:
    """The partitions of ``topic``; waits up to ``timeout_s`` for the broker."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            metadata = consumer.list_topics(topic, timeout=max(0.5, min(5.0, deadline - time.monotonic())))
            found = metadata.topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                return sorted(found.partitions)
            problem = f"topic {topic!r} does not exist"
        except KafkaException as exc:
            problem = exc.args[0].str()
        if time.monotonic() > deadline:
            raise ServiceError(f"reading {topic} on Kafka at {bootstrap}: {problem}")
        time.sleep(0.2)


def committed_offsets(consumer: Consumer, bootstrap: str, topic: str, partitions: list[int],
                      timeout_s: float) -> dict[int, TopicPartition]:
    """The group's committed offset (and metadata) of each partition; offset
    below zero where the group committed none."""
    found = kafka_call(f"reading the committed offsets of {topic}", bootstrap,
                       lambda: consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout_s))
    return {tp.partition: tp for tp in found}


def ends(consumer: Consumer, bootstrap: str, topic: str, partitions: list[int], timeout_s: float) -> dict[int, tuple[int, int]]:
    """(low, high) offsets of each partition, as ``consumer``'s isolation level sees them:
    under ``read_committed`` the high one is the last stable offset."""
    return {p: kafka_call(f"querying the offsets of {topic}", bootstrap,
                          lambda p=p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s))
            for p in partitions}
