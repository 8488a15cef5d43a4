"""Which records of one partition a reader has handled, and the position it commits.

A consumer group's committed offset means "everything below is handled". A
cross-section reader needs more: the signals of one cross-section lie on
several partitions, so a record still needed (its cross-section is not yet
complete, or not yet taken by the caller) can sit below records that are
handled (signals of cross-sections already taken). The position committed
for a partition is therefore:

* ``offset``: its first record still needed (the group's offset, which tools
  that show a group's lag read as usual);
* in the commit's metadata, ``read_to``: how far the reader had read, and
  ``needed``: the ranges of ``[offset, read_to)`` that hold needed records.

Every other record below ``read_to`` is handled: after a restart it is read
again and skipped, so a cross-section the caller took is never delivered
again, and never half of one. Offsets that hold no record (transaction
markers, records of aborted transactions) may fall inside a range: a
``read_committed`` consumer never returns them.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

METADATA_VERSION = 1
# Kafka refuses commit metadata above offset.metadata.max.bytes (4096 by
# default). A position that does not fit is not committed: the last one that
# did stays, which only means more may be delivered again after a restart.
MAX_METADATA_BYTES = 3500


class _Metadata(msgspec.Struct, frozen=True):
    v: int
    by: str  # the reader that committed it
    n: int  # its commit count
    to: int  # read_to - offset
    need: list[tuple[int, int]]  # (start - offset, stop - start) of each needed range


@dataclass(frozen=True)
class CommittedPosition:
    """A partition's committed position (see the module's docstring)."""

    offset: int
    read_to: int
    needed: tuple[tuple[int, int], ...] = ()  # absolute [start, stop) ranges within [offset, read_to)
    owner: str = ""
    commit_no: int = 0

    def handled(self, offset: int) -> bool:
        """Whether the record at ``offset`` was handled before this position was committed."""
        return offset < self.read_to and not any(start <= offset < stop for start, stop in self.needed)

    def metadata(self) -> str:
        relative = [(start - self.offset, stop - start) for start, stop in self.needed]
        body = _Metadata(METADATA_VERSION, self.owner, self.commit_no, self.read_to - self.offset, relative)
        return msgspec.json.encode(body).decode()

    @classmethod
    def parse(cls, offset: int, metadata: str | None) -> "CommittedPosition":
        """The position a group committed: ``offset`` alone (committed by another
        tool, or unreadable metadata: nothing above it is known to be handled)."""
        plain = cls(offset, offset)
        if not metadata:
            return plain
        try:
            body = msgspec.json.decode(metadata, type=_Metadata)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return plain
        if body.v != METADATA_VERSION or body.to < 0:
            return plain
        needed = tuple((offset + start, offset + start + length) for start, length in body.need
                       if start >= 0 and length > 0 and start + length <= body.to)
        return cls(offset, offset + body.to, needed, body.by, body.n)


class PartitionLedger:
    """The records of one partition from its committed position on: runs of
    consecutive records that belong to one owner (a cross-section being
    assembled or waiting to be taken) or to none (handled)."""

    def __init__(self, start: int, resumed: CommittedPosition | None = None):
        self.read_to = start  # the next offset to read
        self.runs: list[list] = []  # [first offset, last offset, owner or None]; never starts with None
        # Until the reader has read past it, the position committed before a restart
        # says which of the records ahead were handled already.
        self.resumed = resumed if resumed is not None and resumed.read_to > start else None

    def replayed(self, offset: int) -> bool:
        """Whether the record at ``offset`` was handled before a restart (skip it)."""
        return self.resumed is not None and self.resumed.handled(offset)

    def record(self, offset: int, owner: int | None) -> None:
        """The record at ``offset`` (offsets only grow) belongs to ``owner``;
        None: it is handled already (a replay, garbage, a duplicate)."""
        if self.runs and self.runs[-1][2] == owner:
            self.runs[-1][1] = offset
        elif owner is not None or self.runs:
            self.runs.append([offset, offset, owner])
        self._advance(offset + 1)

    def reached(self, offset: int) -> None:
        """The partition's end (its last stable offset) is at ``offset``."""
        self._advance(offset)

    def release(self, owners: set[int]) -> None:
        """The records of ``owners`` are handled now."""
        if not any(run[2] in owners for run in self.runs):
            return
        merged: list[list] = []
        for first, last, owner in self.runs:
            owner = None if owner in owners else owner
            if merged and merged[-1][2] is None and owner is None:
                merged[-1][1] = last
            elif owner is not None or merged:  # handled records before the first needed one are below the offset
                merged.append([first, last, owner])
        self.runs = merged

    def position(self, owner: str = "", commit_no: int = 0) -> CommittedPosition:
        """The position to commit now."""
        needed = _merge_adjacent_needed(self.runs)
        read_to = self.read_to
        if self.resumed is not None:
            read_to = self.resumed.read_to
            needed += [(max(start, self.read_to), stop) for start, stop in self.resumed.needed if stop > self.read_to]
        offset = needed[0][0] if needed else read_to
        return CommittedPosition(offset, read_to, tuple(needed), owner, commit_no)

    def _advance(self, offset: int) -> None:
        self.read_to = max(self.read_to, offset)
        if self.resumed is not None and self.read_to >= self.resumed.read_to:
            self.resumed = None


def _merge_adjacent_needed(runs: list[list]) -> list[tuple[int, int]]:
    """Ranges of consecutive needed runs: two needed runs with no handled
    record between them form one range."""
    ranges: list[tuple[int, int]] = []
    previous_needed = False
    for first, last, owner in runs:
        if owner is None:
            previous_needed = False
            continue
        if previous_needed:
            ranges[-1] = (ranges[-1][0], last + 1)
        else:
            ranges.append((first, last + 1))
        previous_needed = True
    return ranges
