"""Drift events from the drift topic, filtered by severity, kind and model set.

::

    alerts = DriftAlertReader(settings, group_id="pager", min_severity="critical")
    for event in alerts:         # follows the topic
        page(event)              # the next iteration marks it handled

Read ``read_committed`` (the engine writes its feature-drift events in its
transactions), from the group's committed position: a reader stopped at any
point resumes after the last event it handed over and saw handled; at most
the one it was handing over comes again. The monitor publishes at least
once, so an event may also appear twice on the topic: :meth:`DriftEvent.key`
names it (the same finding has the same key). A record that is not a drift
event is counted and skipped, never raised.
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Iterable, Iterator

import msgspec
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition

from signalml.client.kafka import committed_offsets, ends, kafka_call, partitions_of, reader_consumer
from signalml.config import Settings
from signalml.contracts import DriftEvent, Severity, decoder
from signalml.errors import ServiceError

log = logging.getLogger("signalml.client")

SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
_decode = decoder(DriftEvent).decode


@dataclass
class DriftCounts:
    delivered: int = 0
    filtered: int = 0  # events the filters left out
    undecodable: int = 0  # records that are not a drift event

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class DriftAlertReader:
    """Drift events at or above ``min_severity``, of ``kinds`` and
    ``model_sets`` (None: any), in topic order per partition.

    ``group_id``, ``from_beginning`` and ``topic`` as for
    :class:`~signalml.client.signals_reader.CrossSectionReader`."""

    def __init__(self, settings: Settings, group_id: str | None = None, *, topic: str | None = None,
                 from_beginning: bool = False, min_severity: Severity = "info",
                 kinds: Iterable[str] | None = None, model_sets: Iterable[str] | None = None,
                 timeout_s: float = 30.0):
        if min_severity not in SEVERITIES:
            raise ValueError(f"min_severity must be one of {', '.join(SEVERITIES)}, got {min_severity!r}")
        self.bootstrap = settings.kafka.bootstrap_servers
        self.topic = topic or settings.kafka.topics.drift.name
        self.group_id = group_id
        self.commits = group_id is not None
        self.min_rank = SEVERITIES.index(min_severity)
        self.kinds = None if kinds is None else frozenset(kinds)
        self.model_sets = None if model_sets is None else frozenset(model_sets)
        self.counts = DriftCounts()
        self.consumer = reader_consumer(self.bootstrap, group_id or f"signalml-client-{uuid.uuid4().hex}")
        try:
            self._start(from_beginning, timeout_s)
        except BaseException:
            self.close()
            raise

    def _start(self, from_beginning: bool, timeout_s: float) -> None:
        partitions = partitions_of(self.consumer, self.bootstrap, self.topic, timeout_s)
        committed = committed_offsets(self.consumer, self.bootstrap, self.topic, partitions, timeout_s) \
            if self.commits else {}
        stable = ends(self.consumer, self.bootstrap, self.topic, partitions, timeout_s)
        starts = {}
        for p in partitions:
            mark = committed.get(p)
            low, high = stable[p]
            starts[p] = mark.offset if mark is not None and mark.offset >= 0 else (low if from_beginning else high)
        self.read_to = dict(starts)  # partition -> next offset to read
        self.handled_to = dict(starts)  # partition -> every record below is handled
        self.committed_to = {p: tp.offset for p, tp in committed.items() if tp.offset >= 0}
        self.stop_at = {p: high for p, (_, high) in stable.items()}
        self.pending: collections.deque[Message] = collections.deque()
        self.handed: tuple[int, int] | None = None  # (partition, offset) of the event last returned
        kafka_call(f"assigning {self.topic}", self.bootstrap,
                   lambda: self.consumer.assign([TopicPartition(self.topic, p, o) for p, o in starts.items()]))

    def wanted(self, event: DriftEvent) -> bool:
        return (SEVERITIES.index(event.severity) >= self.min_rank
                and (self.kinds is None or event.kind in self.kinds)
                and (self.model_sets is None or event.model_set in self.model_sets))

    def poll(self, timeout_s: float = 1.0) -> DriftEvent | None:
        """The next wanted event, or None if none came within ``timeout_s``.
        Marks the one returned before as handled."""
        self._acknowledge_handed()
        deadline = time.monotonic() + timeout_s
        while True:
            while self.pending:
                message = self.pending.popleft()
                p, offset = message.partition(), message.offset()
                try:
                    event = _decode(message.value() or b"")
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    self.counts.undecodable += 1
                    log.warning("%s partition %d offset %d: not a drift event: %s", self.topic, p, offset, exc)
                    self.handled_to[p] = offset + 1
                    continue
                if not self.wanted(event):
                    self.counts.filtered += 1
                    self.handled_to[p] = offset + 1
                    continue
                self.counts.delivered += 1
                self.handed = (p, offset)
                return event
            left = deadline - time.monotonic()
            if left <= 0:
                self._commit()
                return None
            self._read(min(left, 0.2))

    def acknowledge(self) -> None:
        """The event last returned is handled: commit past it now."""
        self._acknowledge_handed()

    def __iter__(self) -> Iterator[DriftEvent]:
        """Follow the topic until the caller stops."""
        while True:
            event = self.poll(1.0)
            if event is not None:
                yield event

    def until_caught_up(self) -> Iterator[DriftEvent]:
        """The wanted events committed before the reader started; stops once caught up."""
        while True:
            event = self.poll(0.2)
            if event is not None:
                yield event
            elif self.caught_up:
                self._acknowledge_handed()
                return

    @property
    def caught_up(self) -> bool:
        return not self.pending and all(self.read_to[p] >= end for p, end in self.stop_at.items())

    def close(self) -> None:
        """Stop reading; the event last returned and not acknowledged comes again after a restart."""
        if getattr(self, "consumer", None) is not None:
            self.consumer.close()
            self.consumer = None

    def __enter__(self) -> "DriftAlertReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- internals

    def _acknowledge_handed(self) -> None:
        if self.handed is not None:
            p, offset = self.handed
            self.handled_to[p] = offset + 1
            self.handed = None
            self._commit()

    def _read(self, timeout_s: float) -> None:
        messages = kafka_call(f"reading {self.topic}", self.bootstrap,
                              lambda: self.consumer.consume(num_messages=500, timeout=timeout_s))
        for message in messages:
            error = message.error()
            if error is None:
                self.pending.append(message)
                self.read_to[message.partition()] = message.offset() + 1
            elif error.code() == KafkaError._PARTITION_EOF:
                p = message.partition()
                self.read_to[p] = max(self.read_to[p], message.offset())
                waiting = (self.handed is not None and self.handed[0] == p) or any(m.partition() == p for m in self.pending)
                if not waiting:  # what lies between the last record and the end is markers and aborted records
                    self.handled_to[p] = max(self.handled_to[p], message.offset())
            elif error.fatal():
                raise ServiceError(f"reading {self.topic} on Kafka at {self.bootstrap}: {error.str()}")
            else:
                log.warning("reading %s: %s", self.topic, error.str())

    def _commit(self) -> None:
        if not self.commits:
            return
        moved = {p: o for p, o in self.handled_to.items() if self.committed_to.get(p) != o}
        if not moved:
            return
        try:
            self.consumer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in moved.items()],
                                 asynchronous=False)
        except KafkaException as exc:
            log.warning("committing the position of %s for group %s: %s", self.topic, self.group_id,
                        exc.args[0].str())
            return
        self.committed_to.update(moved)
