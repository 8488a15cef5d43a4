"""The embedded Kafka broker, for real: a second, independent broker in a
temporary state directory on free ports (the default stack on 9092 is never
touched). One broker is shared by the module; the last tests stop and
restart it."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from signalml.config import load_settings
from signalml.errors import PortInUseError, ServiceError, SetupError
from signalml.services.kafka import KafkaBroker
from signalml.services.process import free_port

pytestmark = pytest.mark.integration


def _settings(state_dir: Path, port: int, controller_port: int, **kafka):
    return load_settings(
        overrides={
            "paths": {"state_dir": str(state_dir)},
            "kafka": {"port": port, "controller_port": controller_port, **kafka},
        }
    )


def _processes_with(marker: str) -> list[int]:
    """Pids of live processes whose command line contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _poll_until(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    ports = set()
    while len(ports) < 2:
        ports.add(free_port())
    port, controller_port = sorted(ports)
    kafka = KafkaBroker(_settings(tmp_path_factory.mktemp("stack"), port, controller_port))
    started = time.monotonic()
    kafka.start()
    print(f"kafka start-to-ready incl. topics: {time.monotonic() - started:.1f} s")
    yield kafka
    kafka.stop()


def test_topics_exist_with_configured_partitions_and_configs(broker):
    configured = broker.cfg.topics.all().values()
    assert broker.topics() == {t.name: t.partitions for t in configured}

    admin = broker.admin()
    resources = [ConfigResource("topic", t.name) for t in configured]
    described = {r.name: f.result(timeout=10) for r, f in admin.describe_configs(resources).items()}
    for topic in configured:
        entries = described[topic.name]
        for key, value in topic.config.items():
            assert entries[key].value == value, (topic.name, key)
        expected_policy = topic.config.get("cleanup.policy", "delete")
        assert entries["cleanup.policy"].value == expected_policy, topic.name
    compacted = [t.name for t in configured if t.config.get("cleanup.policy") == "compact"]
    assert {"control", "engine.state"} <= set(compacted)


def test_produced_message_is_consumed_back(broker):
    topic = broker.cfg.topics.bars.name
    key, value = b"AAPL", uuid.uuid4().bytes
    delivered = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    producer.produce(topic, key=key, value=value, on_delivery=lambda err, msg: delivered.append((err, msg)))
    assert producer.flush(30) == 0
    err, msg = delivered[0]
    assert err is None, err

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"test-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, msg.partition(), msg.offset())])
    try:
        got = _poll_until(lambda: (m := consumer.poll(0.2)) is not None and not m.error() and m,
                          timeout_s=30, what="the produced message")
    finally:
        consumer.close()
    assert (got.key(), got.value()) == (key, value)


def test_start_again_and_ensure_topics_are_harmless(broker):
    pid = broker.status()["pid"]
    broker.start()
    status = broker.status()
    assert status["running"] and status["pid"] == pid
    assert status["version"] == "4.1.1"
    assert status["bootstrap"] == broker.bootstrap
    assert status["topics"] == {t.name: t.partitions for t in broker.cfg.topics.all().values()}
    assert set(broker.ensure_topics().values()) == {"exists"}


def test_classpath_is_cached(broker):
    before = broker.classpath_path.stat().st_mtime_ns
    jars = broker.resolve()
    assert broker.classpath_path.stat().st_mtime_ns == before  # Maven did not run again
    assert any(j.name == "kafka_2.13-4.1.1.jar" for j in jars)
    assert any(j.name.startswith("log4j-slf4j-impl-") for j in jars)


def test_version_mismatch_is_a_clear_error(tmp_path):
    other = KafkaBroker(_settings(tmp_path, free_port(), free_port(), version="4.0.0"))
    with pytest.raises(SetupError, match=r"kafka\.version.*4\.0\.0.*4\.1\.1"):
        other.resolve()


def test_port_in_use_names_the_port_and_setting(broker, tmp_path):
    # Our broker holds its port: a second stack configured on it must refuse.
    other = KafkaBroker(_settings(tmp_path / "a", broker.cfg.port, free_port()))
    with pytest.raises(PortInUseError) as info:
        other.start()
    assert str(broker.cfg.port) in str(info.value) and "kafka.port" in str(info.value)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        other = KafkaBroker(_settings(tmp_path / "b", free_port(), busy))
        with pytest.raises(PortInUseError) as info:
            other.start()
    assert str(busy) in str(info.value) and "kafka.controller_port" in str(info.value)
    assert not other.status()["running"]
    assert not _processes_with(other.marker)


def test_other_view_of_the_same_stack(broker):
    """Another process (a later ``signalml`` call) sees the same broker through
    the state directory; a configuration that drifted is reported, not applied."""
    cfg = broker.cfg
    same = KafkaBroker(_settings(broker.state_dir, cfg.port, cfg.controller_port))
    assert same.status()["pid"] == broker.status()["pid"]

    more = {"kafka": {"topics": {"bars": {"name": cfg.topics.bars.name, "partitions": cfg.topics.bars.partitions + 2}}}}
    drifted = KafkaBroker(load_settings(overrides={
        "paths": {"state_dir": str(broker.state_dir)},
        "kafka": {"port": cfg.port, "controller_port": cfg.controller_port, **more["kafka"]},
    }))
    report = drifted.ensure_topics()
    assert "partitions" in report[cfg.topics.bars.name]
    assert broker.topics()[cfg.topics.bars.name] == cfg.topics.bars.partitions  # left unchanged

    moved = KafkaBroker(_settings(broker.state_dir, free_port(), cfg.controller_port))
    with pytest.raises(ServiceError, match="already running"):
        moved.start()


def test_stop_leaves_no_process(broker):
    assert _processes_with(broker.marker)
    assert broker.stop() is True
    assert not _processes_with(broker.marker)
    assert broker.status()["running"] is False
    assert broker.stop() is False  # nothing left to stop


def test_restart_reuses_the_formatted_data(broker):
    meta = (broker.data_dir / "meta.properties").read_text()
    broker.start()
    assert (broker.data_dir / "meta.properties").read_text() == meta  # not formatted again
    assert broker.topics() == {t.name: t.partitions for t in broker.cfg.topics.all().values()}
    # The message of the round-trip test survived the restart.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"test-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([broker.cfg.topics.bars.name])
    try:
        got = _poll_until(lambda: (m := consumer.poll(0.2)) is not None and not m.error() and m,
                          timeout_s=30, what="a message written before the restart")
    finally:
        consumer.close()
    assert got.key() == b"AAPL"
