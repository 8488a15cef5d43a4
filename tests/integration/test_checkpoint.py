"""Transactions on the real broker: output, snapshot and offsets commit together."""

import uuid

import pytest
from confluent_kafka import Consumer, Producer

from signalml.errors import ServiceError
from stream.checkpoint import Checkpoint, latest_snapshot
from stream.topic_reader import read_topic
from tests.integration.kafka_helpers import scratch_topics

pytestmark = pytest.mark.integration


def consumer_on(settings, topic, group):
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    return consumer


def consume(consumer, n, timeout_s=30):
    got = []
    import time

    deadline = time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            got.append(msg.value())
    return got


def test_committed_output_snapshot_and_offsets_are_seen_together_and_aborted_ones_never(stack, settings):
    bootstrap = settings.kafka.bootstrap_servers
    engine_id = f"test-{uuid.uuid4().hex[:8]}"
    group = f"group-{engine_id}"
    with scratch_topics(bootstrap, "in", "out") as (inp, out):
        producer = Producer({"bootstrap.servers": bootstrap})
        for i in range(6):
            producer.produce(inp, f"in-{i}".encode())
        producer.flush(30)

        consumer = consumer_on(settings, inp, group)
        checkpoint = Checkpoint(settings, consumer, engine_id)
        assert consume(consumer, 3) == [b"in-0", b"in-1", b"in-2"]
        checkpoint.produce(out, b"k", b"out-a")
        checkpoint.commit(b"snapshot-1")

        assert consume(consumer, 3) == [b"in-3", b"in-4", b"in-5"]
        checkpoint.produce(out, b"k", b"out-b")
        checkpoint.abort()  # as if the engine died before committing
        consumer.close()

        assert latest_snapshot(settings, engine_id) == b"snapshot-1"
        assert [m.value() for m in read_topic(bootstrap, out)] == [b"out-a"]

        # A restarted engine resumes after the committed offsets only.
        restarted = consumer_on(settings, inp, group)
        assert consume(restarted, 3) == [b"in-3", b"in-4", b"in-5"]
        restarted.close()


def test_a_restarted_engine_fences_its_zombie(stack, settings):
    bootstrap = settings.kafka.bootstrap_servers
    engine_id = f"test-{uuid.uuid4().hex[:8]}"
    with scratch_topics(bootstrap, "in", "out") as (inp, out):
        zombie_consumer = consumer_on(settings, inp, f"g-{engine_id}")
        zombie = Checkpoint(settings, zombie_consumer, engine_id)
        zombie.produce(out, b"k", b"from-zombie")
        fresh_consumer = consumer_on(settings, inp, f"g-{engine_id}")
        fresh = Checkpoint(settings, fresh_consumer, engine_id)
        with pytest.raises(ServiceError, match="fenced|Fenced|FENCED"):
            zombie.commit(b"zombie-snapshot")
        fresh.produce(out, b"k", b"from-fresh")
        fresh.commit(b"fresh-snapshot")
        assert [m.value() for m in read_topic(bootstrap, out)] == [b"from-fresh"]
        assert latest_snapshot(settings, engine_id) == b"fresh-snapshot"
        zombie_consumer.close()
        fresh_consumer.close()


def test_no_snapshot_yet_is_none(stack, settings):
    assert latest_snapshot(settings, f"never-{uuid.uuid4().hex[:8]}") is None
