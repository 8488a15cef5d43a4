"""Transactions on the real broker: output and snapshot commit together,
zombies are fenced, and every call stays bounded while the broker is down."""

import threading
import time
import uuid

import pytest

from signalml.config import load_settings
from signalml.services.kafka import KafkaBroker
from signalml.services.process import free_port, port_answers
from stream.checkpoint import Checkpoint, ProducerFenced, Stopped, TransactionFailed, latest_snapshot
from stream.topic_reader import read_topic
from tests.integration.engine_world import REPO
from tests.integration.kafka_helpers import scratch_topics

pytestmark = pytest.mark.integration


def started(settings, engine_id, **kwargs) -> Checkpoint:
    checkpoint = Checkpoint(settings, engine_id, **kwargs)
    checkpoint.start()
    return checkpoint


def test_committed_output_and_snapshot_are_seen_together_and_aborted_ones_never(stack, settings):
    bootstrap = settings.kafka.bootstrap_servers
    engine_id = f"test-{uuid.uuid4().hex[:8]}"
    with scratch_topics(bootstrap, "out") as (out,):
        checkpoint = started(settings, engine_id)
        checkpoint.produce(out, b"k", b"out-a")
        checkpoint.commit(b"snapshot-1")
        checkpoint.produce(out, b"k", b"out-b")
        checkpoint.abort()  # as if the engine died before committing
        checkpoint.produce(out, b"k", b"out-c")
        checkpoint.reset()  # a new producer: what the old one left open is aborted

        assert latest_snapshot(settings, engine_id) == b"snapshot-1"
        assert [m.value() for m in read_topic(bootstrap, out)] == [b"out-a"]
        checkpoint.produce(out, b"k", b"out-d")
        checkpoint.commit(b"snapshot-2")
        assert latest_snapshot(settings, engine_id) == b"snapshot-2"
        assert [m.value() for m in read_topic(bootstrap, out)] == [b"out-a", b"out-d"]


def test_a_restarted_engine_fences_its_zombie(stack, settings):
    bootstrap = settings.kafka.bootstrap_servers
    engine_id = f"test-{uuid.uuid4().hex[:8]}"
    with scratch_topics(bootstrap, "out") as (out,):
        zombie = started(settings, engine_id)
        zombie.produce(out, b"k", b"from-zombie")
        fresh = started(settings, engine_id)
        with pytest.raises(ProducerFenced):
            zombie.commit(b"zombie-snapshot")
        fresh.produce(out, b"k", b"from-fresh")
        fresh.commit(b"fresh-snapshot")
        assert [m.value() for m in read_topic(bootstrap, out)] == [b"from-fresh"]
        assert latest_snapshot(settings, engine_id) == b"fresh-snapshot"


def test_no_snapshot_yet_is_none(stack, settings):
    assert latest_snapshot(settings, f"never-{uuid.uuid4().hex[:8]}") is None


@pytest.fixture()
def private_broker(tmp_path):
    """A broker of its own, so that stopping it disturbs no other test."""
    settings = load_settings(REPO / "signalml.yaml", overrides={
        "paths": {"state_dir": str(tmp_path / "state")},
        "kafka": {"port": free_port(), "controller_port": free_port()},
    })
    broker = KafkaBroker(settings)
    broker.start()
    try:
        yield settings, broker
    finally:
        broker.stop()


def test_while_the_broker_is_down_every_call_is_bounded_and_a_new_producer_resumes_after(private_broker):
    settings, broker = private_broker
    engine_id = f"test-{uuid.uuid4().hex[:8]}"
    out = settings.kafka.topics.signals.name
    checkpoint = started(settings, engine_id, timeout_s=3.0)
    checkpoint.produce(out, b"k", b"before")
    checkpoint.commit(b"snapshot-1")
    checkpoint.produce(out, b"k", b"lost")

    broker.stop()
    assert not port_answers(settings.kafka.host, settings.kafka.port)  # the broker is really down
    began = time.monotonic()
    with pytest.raises(TransactionFailed, match="did not complete within 3 s"):
        checkpoint.commit(b"snapshot-2")
    assert 2.9 < time.monotonic() - began < 6.0

    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    waiting = Checkpoint(settings, engine_id, timeout_s=60.0, should_stop=stop.is_set)
    began = time.monotonic()
    with pytest.raises(Stopped):
        waiting.start()  # init_transactions cannot reach the coordinator: only the stop ends it
    assert time.monotonic() - began < 3.0

    broker.start()
    checkpoint.timeout_s = 30.0
    checkpoint.reset()
    checkpoint.produce(out, b"k", b"after")
    checkpoint.commit(b"snapshot-3")
    assert latest_snapshot(settings, engine_id) == b"snapshot-3"
    assert [m.value() for m in read_topic(settings.kafka.bootstrap_servers, out)] == [b"before", b"after"]
