"""The monitor's gap reader against the real broker: what a read_committed
reader finds in an offset range of a topic written in transactions, one
of them aborted."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from stream.monitor.positions import GapReader

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def topic(stack, settings):
    """Offsets: a 0, b 1, commit marker 2, x 3, y 4, abort marker 5, c 6, commit marker 7."""
    name = f"positions.{uuid.uuid4().hex[:8]}"
    bootstrap = settings.kafka.bootstrap_servers
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"positions-{name}"})
    producer.init_transactions(30)
    for values, commit in (([b"a", b"b"], True), ([b"x", b"y"], False), ([b"c"], True)):
        producer.begin_transaction()
        for value in values:
            producer.produce(name, value, key=value, partition=0)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            producer.abort_transaction(30)
    yield bootstrap, name
    admin.delete_topics([name])[name].result(30)


def test_a_range_yields_its_committed_records_with_their_offsets(topic):
    bootstrap, name = topic
    reader = GapReader(bootstrap, timeout_s=20)
    try:
        assert reader.first_offset(name, 0) == 0
        assert reader.read(name, 0, 0, 6) == [(0, b"a", b"a"), (1, b"b", b"b")]
        assert reader.read(name, 0, 1, 6) == [(1, b"b", b"b")]
        # Markers and an aborted transaction only: the gap of a read_committed reader, no record missed.
        assert reader.read(name, 0, 2, 6) == []
        assert reader.read(name, 0, 0, 7) == [(0, b"a", b"a"), (1, b"b", b"b"), (6, b"c", b"c")]
        # Up to the partition's end: the reader stops there rather than wait.
        assert reader.read(name, 0, 6, 100) == [(6, b"c", b"c")]
    finally:
        reader.close()


def test_without_a_position_the_monitor_starts_at_its_group_s_committed_offset(topic):
    from confluent_kafka import Consumer, TopicPartition

    bootstrap, name = topic
    group = f"positions-group-{uuid.uuid4().hex[:8]}"
    reader = GapReader(bootstrap, timeout_s=20, group_id=group)
    try:
        assert reader.first_offset(name, 0) == 0  # nothing committed: the beginning
        committer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        committer.commit(offsets=[TopicPartition(name, 0, 6)], asynchronous=False)
        committer.close()
        assert reader.first_offset(name, 0) == 6  # e.g. set to the end to skip history
    finally:
        reader.close()
