"""What one demo run starts and cleans up: the stack's services it had to
start, its engine and monitor processes, and their per-run names on the
shared topics.

The demo runs on the configured topics, where other runs' bars, signals and
engine state already are. Each run therefore has its own engine id, consumer
group and monitor app id (:class:`RunIds`), whose offsets are committed at
the end of the topics before the processes start
(:func:`start_group_at_end`): they read only what this run replays, and a
second run never resumes the first one's state. :func:`forget_run` removes
those per-run leftovers afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import msgspec
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from signalml.config import Settings
from signalml.services.kafka import KafkaBroker
from signalml.services.process import port_answers
from signalml.services.stack import Stack
from stream.checkpoint import base_key, base_part_key, latest_snapshot


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


@dataclass(frozen=True)
class RunIds:
    """What makes this run's engine and monitor its own on shared topics."""

    run: str

    @classmethod
    def new(cls) -> "RunIds":
        return cls(f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}")

    @property
    def engine_id(self) -> str:
        return f"demo-{self.run}"

    @property
    def consumer_group(self) -> str:
        return f"signalml-demo-{self.run}"

    @property
    def monitor_app(self) -> str:
        return f"signalml-demo-monitor-{self.run}"


# ---------------------------------------------------------------- the stack


def bring_up(settings: Settings) -> list[str]:
    """Start the services that are not serving yet; returns the names of those
    this call started (the only ones ``--stop`` stops). A broker that answers
    on the configured port but was not started from this state directory
    (another checkout's, docker compose's) is used as it is."""
    stack, started = Stack(settings), []
    try:
        for name, service in stack.services.items():
            if service.status().get("running"):
                say(f"stack: {name} already running")
            elif name == "kafka" and port_answers(settings.kafka.host, settings.kafka.port):
                say(f"stack: kafka answers on {settings.kafka.bootstrap_servers} (not started here; used as it is)")
            else:
                say(f"stack: starting {name}")
                stack.up(only=name)
                started.append(name)
        KafkaBroker(settings).ensure_topics()
    except BaseException:
        stop_services(settings, started)
        raise
    return started


def stop_services(settings: Settings, names: list[str]) -> list[str]:
    stack = Stack(settings)
    stopped = [name for name in reversed(names) if stack.down(only=name)]
    if stopped:
        say(f"stack: stopped {', '.join(stopped)} (started by this run)")
    return stopped


# ---------------------------------------------------------------- per-run names


def start_group_at_end(bootstrap: str, group: str, topics: list[str]) -> None:
    """Commit ``group``'s offsets at the current end of ``topics``: a new group
    then reads what comes next, not the history other runs left there."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        offsets = []
        for topic in topics:
            for partition in sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions):
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
                offsets.append(TopicPartition(topic, partition, high))
        consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()


def forget_run(settings: Settings, ids: RunIds) -> None:
    """Best effort, once the engine and monitor stopped: tombstones for the
    engine's snapshots (the state topic is compacted, so they go), both
    consumer groups, the monitor's internal topics (its table's changelog)."""
    bootstrap = settings.kafka.bootstrap_servers
    producer = Producer({"bootstrap.servers": bootstrap})
    snapshot = latest_snapshot(settings, ids.engine_id)
    parts = (msgspec.msgpack.decode(snapshot).get("base_parts") if snapshot else None) or 0
    keys = [ids.engine_id.encode(), base_key(ids.engine_id)] + [base_part_key(ids.engine_id, i) for i in range(parts)]
    for key in keys:
        producer.produce(settings.kafka.topics.engine_state.name, value=None, key=key)
    producer.flush(10)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    internal = [t for t in admin.list_topics(timeout=10).topics if t.startswith(f"{ids.monitor_app}-")]
    futures = list(admin.delete_consumer_groups([ids.consumer_group, ids.monitor_app]).values())
    futures += list(admin.delete_topics(internal).values()) if internal else []
    for future in futures:
        try:
            future.result(timeout=10)
        except Exception:  # noqa: BLE001 - leftovers only cost disk; nothing reads them
            pass


# ---------------------------------------------------------------- processes


class Child:
    """``signalml <command>`` as a child process, its output in ``log``."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, config: str | None):
        self.name, self.log = command[0], log
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "signalml.cli", *(["--config", config] if config else []), *command]
        with open(log, "ab") as sink:
            # Its own session: Ctrl-C reaches only the demo, which stops it in order.
            self.process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=sink,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (both shut down cleanly on it), SIGKILL after ``timeout_s``."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
