"""Which of several engines with one engine id is active: the broker decides.

Every engine joins the consumer group ``signalml-lease-<engine_id>`` on the
one-partition lease topic; the member the group assigns that partition holds
the lease and is the *active* engine, the others stand by. Nothing is ever
read from or written to the topic: the group's membership is the lease.

- An engine killed outright stops heartbeating; the group drops it after
  ``serving.lease_session_timeout_s`` and assigns the partition to a standby.
- An engine that stops leaves the group at once (:meth:`Lease.close`), so a
  standby takes over without waiting for the session to expire.
- The sticky assignor keeps the partition where it is when an engine joins,
  so a restarted engine waits as a standby instead of taking the lease.
- When the partition is revoked, :attr:`Lease.held` turns false and the
  revocation waits (up to the session timeout) until the engine says it has
  stopped (:meth:`Lease.release`), so the next owner starts after it. An
  engine too slow to notice is fenced anyway: the next owner's producer
  takes over the engine's ``transactional.id``.

The lease runs on a thread of its own, so heartbeats and rebalances go on
while the engine scores, commits or waits for a service.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from confluent_kafka import Consumer, KafkaException

from signalml.config import Settings
from stream.checkpoint import RECONNECT_BACKOFF_MAX_MS, rdkafka_logger

log = logging.getLogger("signalml.engine")

POLL_S = 0.1


def lease_group(engine_id: str) -> str:
    """The consumer group whose holder of the lease topic's partition is the active engine ``engine_id``."""
    return f"signalml-lease-{engine_id}"


def member_name(engine_id: str, http_address: str) -> str:
    """The lease consumer's ``client.id``: which engine process a member of
    the lease group is, as ``signalml status`` shows it."""
    return f"signalml-engine-{engine_id}@{socket.gethostname()}:pid={os.getpid()}:http={http_address}"


def parse_member_name(client_id: str) -> dict:
    """``host``, ``pid`` and ``http`` of a :func:`member_name` (empty for another client)."""
    _, at, rest = client_id.partition("@")
    host, _, fields = rest.partition(":")
    if not at or not fields:
        return {}
    values = dict(field.split("=", 1) for field in fields.split(":", 1) if "=" in field)
    pid = values.get("pid", "")
    return {"host": host, "pid": int(pid) if pid.isdigit() else None, "http": values.get("http")}


class Lease:
    """The lease of one engine id, held or waited for by this process."""

    def __init__(self, settings: Settings, engine_id: str, *, http_address: str = "-"):
        self.settings = settings
        self.engine_id = engine_id
        self.topic = settings.kafka.topics.engine_lease.name
        self.session_timeout_s = settings.serving.lease_session_timeout_s
        self.client_id = member_name(engine_id, http_address)
        self._held = threading.Event()
        self._released = threading.Event()  # the engine acts on no lease
        self._released.set()
        self._rejoin = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="signalml-lease", daemon=True)

    @property
    def held(self) -> bool:
        return self._held.is_set()

    def start(self) -> "Lease":
        self._thread.start()
        return self

    def wait(self, timeout_s: float) -> bool:
        """True once the lease is held (within ``timeout_s``)."""
        return self._held.wait(timeout_s)

    def acquire(self) -> None:
        """The engine acts on the lease from now on: a revocation waits for :meth:`release`."""
        self._released.clear()

    def release(self) -> None:
        """The engine has stopped acting on the lease (its transaction aborted, its producer dropped)."""
        self._released.set()

    def relinquish(self) -> None:
        """Give the lease up and join the group again as a new member: after
        a fencing the engine must not trust a lease it may still appear to
        hold; whoever the group then assigns it to restores and goes on."""
        self._held.clear()
        self._rejoin.set()

    def close(self, timeout_s: float = 2.0) -> None:
        """Leave the group (a standby takes over at once). Bounded: with the
        broker away, leaving may not complete, and the session expires instead."""
        self._released.set()
        self._closing.set()
        self._thread.join(timeout_s)

    # ---------------------------------------------------------------- the thread

    def _consumer(self) -> Consumer:
        session_ms = int(self.session_timeout_s * 1000)
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka.bootstrap_servers,
                "group.id": lease_group(self.engine_id),
                "client.id": self.client_id,
                "session.timeout.ms": session_ms,
                # A heartbeat is how a standby hears of a rebalance (the
                # active one left or died): frequent, so it joins at once.
                "heartbeat.interval.ms": max(100, min(1000, session_ms // 6)),
                # Also the rebalance timeout: how long the group waits for a
                # member to rejoin (librdkafka's default is 5 minutes). This
                # thread polls every 0.1 s and blocks at most a session in a
                # revocation, so twice the session bounds a stuck rejoin.
                "max.poll.interval.ms": 2 * session_ms,
                "partition.assignment.strategy": "cooperative-sticky",
                "enable.auto.commit": False,
                "auto.offset.reset": "latest",
                "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
                "logger": rdkafka_logger(),
            }
        )
        consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                           on_lost=self._on_lost)
        return consumer

    def _run(self) -> None:
        while not self._closing.is_set():
            consumer = self._consumer()
            self._rejoin.clear()
            try:
                while not (self._closing.is_set() or self._rejoin.is_set()):
                    consumer.poll(POLL_S)  # serves heartbeats' results and rebalances; reads nothing
            except KafkaException as exc:
                log.warning("engine %s: lease consumer: %s; joining again", self.engine_id, exc.args[0].str())
            finally:
                self._held.clear()
                try:
                    consumer.close()  # leaves the group: the partition goes to a standby now
                except (KafkaException, RuntimeError):
                    pass

    def _mine(self, partitions) -> bool:
        return any(tp.topic == self.topic and tp.partition == 0 for tp in partitions)

    def _on_assign(self, _consumer, partitions) -> None:
        if self._mine(partitions) and not self._rejoin.is_set():
            log.info("engine %s: this engine holds the lease (group %s)", self.engine_id, lease_group(self.engine_id))
            self._held.set()

    def _on_revoke(self, _consumer, partitions) -> None:
        if not self._mine(partitions):
            return
        self._held.clear()
        if not self._closing.is_set():
            log.warning("engine %s: the lease is revoked; this engine stands by", self.engine_id)
        # The next owner is assigned the partition only once this returns.
        if not self._released.wait(self.session_timeout_s):
            log.warning("engine %s: still active %.0f s after the lease was revoked; its next commit is fenced",
                        self.engine_id, self.session_timeout_s)

    def _on_lost(self, _consumer, partitions) -> None:
        # The session expired (the broker unreachable, or this process stalled):
        # the partition may already be someone else's, so waiting is pointless.
        if self._mine(partitions):
            self._held.clear()
            log.warning("engine %s: the lease is lost (no heartbeat within %.0f s); this engine stands by",
                        self.engine_id, self.session_timeout_s)
