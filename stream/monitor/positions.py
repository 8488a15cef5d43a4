"""The monitor's input positions, kept in its own table, and the repair of
what the Faust consumer failed to deliver.

Why Faust's committed offsets are not enough (faust-streaming 0.15.3,
seen in the restart test): after a restart the worker's consumer hands the
agent records fetched while the table was still being recovered, then,
once recovery ends, seeks back to the committed offsets while an earlier
fetch is still in flight. Its gap bookkeeping then takes a jump in offsets
for records that do not exist and skips tens of real ones: bars that never
reach the monitor, so a symbol's forward return silently spans the wrong
bars.

So the monitor keeps, per source partition, the next offset it expects
(``o|TOPIC|PARTITION`` in the state table, written last for each batch, so
a recovered position implies the batch's other writes were recovered
too). A partition without a position starts at the group's committed
offset, or at its beginning. A record before it is a replay and is skipped. A record after it
means either offsets that hold no record for a ``read_committed`` reader
(transaction markers, aborted records) or records the consumer skipped;
:class:`GapReader` reads that range from the broker and returns the
committed records in it, which the monitor processes first, in order.
"""

from __future__ import annotations

import time
from typing import MutableMapping

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition


def position_key(topic: str, partition: int) -> str:
    return f"o|{topic}|{partition}"


class Positions:
    """Next expected offset per source partition: in memory while a batch
    runs, in the state ``store`` once :meth:`flush` writes it."""

    def __init__(self, store: MutableMapping):
        self.store = store
        self.unwritten: dict[str, int] = {}

    def expected(self, topic: str, partition: int) -> int | None:
        key = position_key(topic, partition)
        return self.unwritten.get(key, self.store.get(key))

    def advance(self, topic: str, partition: int, offset: int) -> None:
        self.unwritten[position_key(topic, partition)] = offset + 1

    def flush(self) -> None:
        for key, offset in self.unwritten.items():
            self.store[key] = offset
        self.unwritten = {}

    def forget(self) -> None:
        """Drop unwritten positions (the table is being recovered anew)."""
        self.unwritten = {}


class GapReader:
    """Committed records of one partition in an offset range, read directly
    from the broker (no consumer group)."""

    def __init__(self, bootstrap_servers: str, timeout_s: float = 30.0, group_id: str | None = None):
        self.timeout_s = timeout_s
        self.group_id = group_id
        self.bootstrap_servers = bootstrap_servers
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap_servers,
            "group.id": "signalml-monitor-gap-reader",  # required by the client; nothing is committed
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,
        })

    def first_offset(self, topic: str, partition: int) -> int:
        """Where the monitor starts on a partition it has no position for:
        its consumer group's committed offset when there is one (set by an
        earlier run, or by an operator to skip history), else the
        partition's earliest offset (``auto.offset.reset`` earliest)."""
        if self.group_id is not None:
            group = Consumer({"bootstrap.servers": self.bootstrap_servers, "group.id": self.group_id,
                              "enable.auto.commit": False})
            try:
                committed = group.committed([TopicPartition(topic, partition)], timeout=self.timeout_s)[0].offset
            finally:
                group.close()
            if committed >= 0:
                return committed
        low, _ = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=self.timeout_s)
        return low

    def end_offset(self, topic: str, partition: int) -> int:
        """The partition's high watermark: the offset after its last record
        (committed or not, transaction markers included)."""
        _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=self.timeout_s)
        return high

    def read(self, topic: str, partition: int, start: int, end: int) -> list[tuple[int, bytes | None, bytes]]:
        """``(offset, key, value)`` of the committed records at offsets
        ``start`` <= offset < ``end``. Reading stops on reaching ``end`` or
        the end of what a ``read_committed`` reader may see (the first open
        transaction)."""
        self.consumer.assign([TopicPartition(topic, partition, start if start >= 0 else OFFSET_BEGINNING)])
        records = []
        deadline = time.monotonic() + self.timeout_s
        try:
            while True:
                message = self.consumer.poll(0.5)
                if message is None:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{topic}[{partition}]: offsets {start}..{end} not read in {self.timeout_s:.0f} s")
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return records  # the end of the partition: nothing more in the range
                    raise RuntimeError(f"{topic}[{partition}]: {error}")
                if message.offset() >= end:
                    return records
                records.append((message.offset(), message.key(), message.value()))
        finally:
            self.consumer.unassign()

    def close(self) -> None:
        self.consumer.close()


def read_offsets(bootstrap_servers: str, topic: str, partition: int, offsets: list[int],
                 timeout_s: float = 60.0) -> dict[int, bytes]:
    """The committed records at ``offsets`` of one partition, by offset
    (a fresh consumer each time: no end-of-partition event of an earlier
    read can cut this one short). An offset with no committed record is
    absent from the result."""
    wanted = set(offsets)
    if not wanted:
        return {}
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": "signalml-monitor-record-reader",  # required by the client; nothing is committed
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "enable.partition.eof": True,
    })
    found: dict[int, bytes] = {}
    deadline = time.monotonic() + timeout_s
    try:
        consumer.assign([TopicPartition(topic, partition, min(wanted))])
        while True:
            message = consumer.poll(0.5)
            if message is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{topic}[{partition}]: offsets {sorted(wanted)} not read in {timeout_s:.0f} s")
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return found
                raise RuntimeError(f"{topic}[{partition}]: {error}")
            if message.offset() in wanted:
                found[message.offset()] = message.value()
            if message.offset() >= max(wanted):
                return found
    finally:
        consumer.close()
