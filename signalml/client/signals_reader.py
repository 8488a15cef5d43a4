"""Complete cross-sections of signals from the signals topic, each once.

::

    reader = CrossSectionReader(settings, group_id="desk-7")
    for cross_section in reader:      # follows the topic
        trade(cross_section.frame())  # the next iteration marks it handled

The reader reads every partition of the topic (a cross-section spans them
all), ``read_committed`` (an aborted transaction's signals never show), and
hands over a cross-section only once it holds ``cross_section_size``
symbols. It commits the group's position itself, and only for what the
caller has taken: asking for the next cross-section (or
:meth:`CrossSectionReader.acknowledge`) marks the last one handled. A reader
stopped at any point, even killed, resumes from the group's committed
position and delivers every cross-section it had not handed over and marked
handled, whole; at most the one it was handing over when it stopped comes
again. One reader per group: the group stores positions, it does not share
partitions out (a cross-section needs all of them).

The bookkeeping is :mod:`signalml.client.assembly`; this module feeds it
from a Kafka consumer.
"""

from __future__ import annotations

import collections
import logging
import time
import uuid
from typing import Iterable, Iterator

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from signalml.client.assembly import AssemblyCounts, CrossSectionAssembler, OnSkip
from signalml.client.cross_section import SignalCrossSection
from signalml.client.kafka import committed_offsets, ends, kafka_call, partitions_of, reader_consumer
from signalml.client.ledger import MAX_METADATA_BYTES, CommittedPosition
from signalml.config import Settings
from signalml.errors import ServiceError

log = logging.getLogger("signalml.client")


class CrossSectionReader:
    """Complete cross-sections of the signals topic, oldest first per partition.

    * ``group_id``: the consumer group that stores this reader's position.
      None: a private group; nothing is committed and nothing resumed.
    * ``from_beginning``: where a group with no committed position starts:
      the topic's start, or (default) its end, the next cross-section on.
    * ``topic``: default ``kafka.topics.signals``;
      ``settings.kafka.topics.signals_challenger.name`` for a challenger's.
    * ``model_sets``: only the cross-sections of these model sets (the
      others are marked handled without being delivered).
    * ``probe_interval_s``: how often, at most, an open cross-section's bound
      is queried (the proof that one that started before the reader can no
      longer complete).
    """

    def __init__(self, settings: Settings, group_id: str | None = None, *, topic: str | None = None,
                 from_beginning: bool = False, model_sets: Iterable[str] | None = None,
                 timeout_s: float = 30.0, probe_interval_s: float = 0.5, on_skip: OnSkip | None = None,
                 batch: int = 1000):
        self.bootstrap = settings.kafka.bootstrap_servers
        self.topic = topic or settings.kafka.topics.signals.name
        self.group_id = group_id
        self.commits = group_id is not None
        self.model_sets = None if model_sets is None else frozenset(model_sets)
        self.timeout_s = timeout_s
        self.probe_interval_s = probe_interval_s
        self.batch = batch
        self.owner = uuid.uuid4().hex[:8]
        self.filtered = 0  # complete cross-sections of other model sets
        self.consumer = reader_consumer(self.bootstrap, group_id or f"signalml-client-{uuid.uuid4().hex}")
        # Bounds count open transactions: the high watermark as read_uncommitted sees it.
        self.prober = reader_consumer(self.bootstrap, f"signalml-client-{uuid.uuid4().hex}",
                                      isolation="read_uncommitted")
        try:
            self._start(from_beginning, on_skip)
        except BaseException:
            self.close()
            raise

    def _start(self, from_beginning: bool, on_skip: OnSkip | None) -> None:
        self.partitions = partitions_of(self.consumer, self.bootstrap, self.topic, self.timeout_s)
        committed = (committed_offsets(self.consumer, self.bootstrap, self.topic, self.partitions, self.timeout_s)
                     if self.commits else {})
        stable = ends(self.consumer, self.bootstrap, self.topic, self.partitions, self.timeout_s)
        starts, resumed = {}, {}
        for p in self.partitions:
            low, high = stable[p]
            mark = committed.get(p)
            if mark is not None and mark.offset >= 0:
                starts[p] = mark.offset
                resumed[p] = CommittedPosition.parse(mark.offset, mark.metadata)
            else:
                starts[p] = low if from_beginning else high
        self.assembler = CrossSectionAssembler(starts, resumed, on_skip=on_skip)
        self.stop_at = {p: high for p, (_, high) in stable.items()}  # the end when the reader started
        self.ready: collections.deque[SignalCrossSection] = collections.deque()
        self.handed: SignalCrossSection | None = None
        self.last_committed: dict[int, tuple[int, str]] = {
            p: (tp.offset, tp.metadata or "") for p, tp in committed.items() if tp.offset >= 0}
        self.commit_no = 0
        self.last_probe = 0.0
        kafka_call(f"assigning {self.topic}", self.bootstrap,
                   lambda: self.consumer.assign([TopicPartition(self.topic, p, starts[p]) for p in self.partitions]))

    # ---------------------------------------------------------------- taking cross-sections

    def poll(self, timeout_s: float = 1.0) -> SignalCrossSection | None:
        """The next complete cross-section, or None if none completed within
        ``timeout_s``. Marks the one returned before as handled."""
        self._acknowledge_handed()
        deadline = time.monotonic() + timeout_s
        while not self.ready:
            left = deadline - time.monotonic()
            if left <= 0:
                self._commit()  # records skipped or dropped meanwhile move the position too
                return None
            self._read(min(left, 0.2))
        self.handed = self.ready.popleft()
        return self.handed

    def acknowledge(self, cross_section: SignalCrossSection) -> None:
        """``cross_section`` is handled: commit a position past it now
        (:meth:`poll` does this for the last one it returned, when called again)."""
        self.assembler.acknowledge(cross_section)
        if self.handed is cross_section:
            self.handed = None
        self._commit()

    def __iter__(self) -> Iterator[SignalCrossSection]:
        """Follow the topic: every cross-section, as it completes, until the caller stops."""
        while True:
            cross_section = self.poll(1.0)
            if cross_section is not None:
                yield cross_section

    def until_caught_up(self, timeout_s: float | None = None) -> Iterator[SignalCrossSection]:
        """The cross-sections committed before the reader started (every
        partition read to the end it had then); stops once caught up.
        ``timeout_s``: give up after that long (:class:`ServiceError`)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            cross_section = self.poll(0.2)
            if cross_section is not None:
                yield cross_section
            elif self.caught_up:
                self._acknowledge_handed()
                return
            elif deadline is not None and time.monotonic() > deadline:
                raise ServiceError(f"reading {self.topic}: not caught up within {timeout_s:g} s "
                                   f"(read to {self.assembler.read_to()}, the end was {self.stop_at})")

    @property
    def caught_up(self) -> bool:
        """Every partition read up to where it ended when the reader started,
        and every cross-section completed so far taken."""
        read_to = self.assembler.read_to()
        return not self.ready and all(read_to[p] >= end for p, end in self.stop_at.items())

    @property
    def counts(self) -> AssemblyCounts:
        return self.assembler.counts

    def close(self) -> None:
        """Stop reading. The cross-section last returned by :meth:`poll` and
        not acknowledged counts as not handled: a restart delivers it again."""
        for consumer in (getattr(self, "consumer", None), getattr(self, "prober", None)):
            if consumer is not None:
                consumer.close()
        self.consumer = self.prober = None

    def __enter__(self) -> "CrossSectionReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- internals

    def _acknowledge_handed(self) -> None:
        if self.handed is not None:
            self.acknowledge(self.handed)

    def _read(self, timeout_s: float) -> None:
        messages = kafka_call(f"reading {self.topic}", self.bootstrap,
                              lambda: self.consumer.consume(num_messages=self.batch, timeout=timeout_s))
        for message in messages:
            error = message.error()
            if error is None:
                done = self.assembler.add(message.partition(), message.offset(), message.value())
                if done is not None:
                    self._complete(done)
            elif error.code() == KafkaError._PARTITION_EOF:
                self.assembler.reached(message.partition(), message.offset())
            elif error.fatal():
                raise ServiceError(f"reading {self.topic} on Kafka at {self.bootstrap}: {error.str()}")
            else:
                log.warning("reading %s: %s", self.topic, error.str())
        self._probe()
        self.assembler.settle()

    def _complete(self, cross_section: SignalCrossSection) -> None:
        if self.model_sets is not None and cross_section.model_set not in self.model_sets:
            self.filtered += 1
            self.assembler.acknowledge(cross_section)
        else:
            self.ready.append(cross_section)

    def _probe(self) -> None:
        """Bound the open cross-sections that have none yet (see the assembly's docstring)."""
        now = time.monotonic()
        if not self.assembler.unbounded or now - self.last_probe < self.probe_interval_s:
            return
        seen_by = self.assembler.seq  # every record read so far was read before the query
        try:
            highs = {p: high for p, (_, high) in ends(self.prober, self.bootstrap, self.topic, self.partitions,
                                                       min(self.timeout_s, 5.0)).items()}
        except ServiceError as exc:  # no bound this time: the cross-sections stay open, nothing is lost
            log.warning("%s", exc)
            return
        self.last_probe = now
        self.assembler.bound(highs, seen_by)

    def _commit(self) -> None:
        """Commit the partitions whose position moved (a private group commits nothing)."""
        if not self.commits:
            return
        self.commit_no += 1
        offsets = []
        for p, position in self.assembler.positions(self.owner, self.commit_no).items():
            metadata = position.metadata()
            if len(metadata) > MAX_METADATA_BYTES:
                continue  # the last position that fitted stays (see the ledger)
            last = self.last_committed.get(p)
            if last is not None and last[0] == position.offset and _same_ranges(last[1], metadata):
                continue
            offsets.append((p, position.offset, metadata))
        if not offsets:
            self.commit_no -= 1
            return
        try:
            self.consumer.commit(offsets=[TopicPartition(self.topic, p, o, m) for p, o, m in offsets],
                                 asynchronous=False)
        except KafkaException as exc:  # the next commit carries the position; until then more comes again
            log.warning("committing the position of %s for group %s: %s", self.topic, self.group_id,
                        exc.args[0].str())
            return
        self.last_committed.update({p: (o, m) for p, o, m in offsets})


def _same_ranges(before: str, now: str) -> bool:
    """Whether two commit metadata say the same, the committing reader and count aside."""
    a, b = CommittedPosition.parse(0, before), CommittedPosition.parse(0, now)
    return (a.read_to, a.needed) == (b.read_to, b.needed)
