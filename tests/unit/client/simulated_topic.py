"""A partitioned topic with transactions, as a ``read_committed`` consumer sees it.

Enough of Kafka's semantics to test the cross-section reader's bookkeeping
without a broker: producers write records into open transactions; a commit
or abort writes its marker partition by partition (so, as on a real broker,
a transaction can be visible on one partition before the next); a
partition's last stable offset stops at the first record of a transaction
not yet decided there; a consumer returns committed records below it, skips
aborted records and markers (their offsets are never returned), and reports
the end of a partition once, each time it reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Entry:
    offset: int
    txn: int | None  # None: written outside a transaction (visible at once)
    value: bytes | None  # None: a transaction marker


@dataclass
class Transaction:
    id: int
    state: str = "open"  # open, committing, aborting
    markers_left: list[int] = field(default_factory=list)  # partitions still without its marker
    partitions: set[int] = field(default_factory=set)


class SimulatedTopic:
    def __init__(self, partitions: int):
        self.logs: list[list[Entry]] = [[] for _ in range(partitions)]
        self.transactions: dict[int, Transaction] = {}
        self.decided: dict[int, bool] = {}  # transaction -> committed (True) or aborted (False)
        self._ids = 0

    @property
    def partitions(self) -> range:
        return range(len(self.logs))

    # ---------------------------------------------------------------- producing

    def begin(self) -> int:
        self._ids += 1
        self.transactions[self._ids] = Transaction(self._ids)
        return self._ids

    def write(self, partition: int, value: bytes, txn: int | None = None) -> int:
        log = self.logs[partition]
        log.append(Entry(len(log), txn, value))
        if txn is not None:
            self.transactions[txn].partitions.add(partition)
        return len(log) - 1

    def end(self, txn: int, commit: bool) -> None:
        """Start committing or aborting: markers follow, one partition at a time."""
        transaction = self.transactions[txn]
        transaction.state = "committing" if commit else "aborting"
        transaction.markers_left = sorted(transaction.partitions)

    def write_marker(self, txn: int, index: int = 0) -> None:
        transaction = self.transactions[txn]
        partition = transaction.markers_left.pop(index)
        log = self.logs[partition]
        log.append(Entry(len(log), txn, None))
        if not transaction.markers_left:
            self.decided[txn] = transaction.state == "committing"
            del self.transactions[txn]

    def open_transactions(self) -> list[int]:
        return sorted(self.transactions)

    # ---------------------------------------------------------------- reading

    def high_watermark(self, partition: int) -> int:
        return len(self.logs[partition])

    def last_stable_offset(self, partition: int) -> int:
        for entry in self.logs[partition]:
            if entry.txn is not None and entry.value is not None and not self._decided_on(entry.txn, partition):
                return entry.offset
        return len(self.logs[partition])

    def committed_value(self, entry: Entry, partition: int) -> bool:
        """Whether a consumer returns ``entry``: a record outside a transaction,
        or of one whose commit marker is written on ``partition``."""
        if entry.value is None or entry.txn is None:
            return entry.value is not None
        if entry.txn in self.decided:
            return self.decided[entry.txn]
        transaction = self.transactions[entry.txn]
        return transaction.state == "committing" and partition not in transaction.markers_left

    def _decided_on(self, txn: int, partition: int) -> bool:
        if txn in self.decided:
            return True
        transaction = self.transactions[txn]
        return transaction.state != "open" and partition not in transaction.markers_left


class SimulatedConsumer:
    """A ``read_committed`` consumer of a :class:`SimulatedTopic` from given offsets."""

    def __init__(self, topic: SimulatedTopic, starts: dict[int, int]):
        self.topic = topic
        self.position = dict(starts)
        self.eof_at: dict[int, int | None] = {p: None for p in starts}

    def next(self, partition: int) -> tuple[str, int, bytes | None] | None:
        """("record", offset, value), ("eof", offset, None), or None (nothing new)."""
        end = self.topic.last_stable_offset(partition)
        log = self.topic.logs[partition]
        while self.position[partition] < end:
            entry = log[self.position[partition]]
            self.position[partition] += 1
            if self.topic.committed_value(entry, partition):
                return "record", entry.offset, entry.value
        if self.eof_at[partition] != self.position[partition]:
            self.eof_at[partition] = self.position[partition]
            return "eof", self.position[partition], None
        return None
