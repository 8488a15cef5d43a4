"""Signals in, in any partition order; each complete cross-section out once.

Pure bookkeeping, no broker: the reader (:mod:`signalml.client.signals_reader`)
feeds it what its consumer returns, and tests feed it any interleaving.

* **Identity.** A cross-section is the signals with one ``(model_set, ts,
  cross_section_size)``; it is complete once it holds ``cross_section_size``
  distinct symbols. The engine commits every signal of a cross-section in
  one transaction, so a ``read_committed`` reader sees all of them or none.
* **Skipped records** are handled at once and counted, never raised: bytes
  that are not a signal (``undecodable``), a second signal of a symbol for
  the same cross-section (``duplicate``), or a signal whose horizon or
  member names differ from the cross-section's first (``inconsistent``).
* **A cross-section that cannot complete** is dropped whole and counted
  (``incomplete``): one whose first signals lie before where the reader
  started (a topic read from its end, or from an offset another tool
  committed), or signals that are not the engine's. The proof is a *bound*:
  each partition's end offset, counting open transactions
  (``read_uncommitted``), queried after the cross-section's first signal was
  read. Every signal of that transaction was written before it committed,
  so it lies below the bound; once the reader has read every partition up to
  its bound (a ``read_committed`` consumer passes an offset only once its
  transaction is decided), nothing more of it can come. This holds whatever
  else writes to the topic, and whichever partition's commit marker lands first.
* **Acknowledgement.** A complete cross-section's records stay *needed* until
  the caller has taken it (:meth:`CrossSectionAssembler.acknowledge`); the
  committed positions (:mod:`signalml.client.ledger`) never cover a needed
  record, and mark every handled one, so a restart re-reads each cross-section
  not yet taken whole and skips every record already handled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Callable, Literal, Mapping

import msgspec
from msgspec import Meta

from signalml.client.cross_section import SignalCrossSection
from signalml.client.ledger import CommittedPosition, PartitionLedger
from signalml.contracts import EpochMs, Symbol

SkipReason = Literal["undecodable", "duplicate", "inconsistent"]
OnSkip = Callable[[SkipReason, int, int, str], None]  # (reason, partition, offset, detail)


class WireSignal(msgspec.Struct, frozen=True):
    """The :class:`~signalml.contracts.Signal` contract as it is read: JSON has
    no NaN, so a score the engine could not compute arrives as null."""

    ts: EpochMs
    symbol: Symbol
    score: float | None
    rank: float | None
    members: dict[str, float | None]
    model_set: Annotated[str, Meta(min_length=1, max_length=256)]
    cross_section_size: Annotated[int, Meta(ge=1, le=1_000_000)]
    horizon_bars: int = 0


_decode = msgspec.json.Decoder(WireSignal).decode

Key = tuple[str, int, int]  # (model_set, ts, cross_section_size)


@dataclass
class AssemblyCounts:
    signals: int = 0  # records taken into a cross-section
    completed: int = 0  # cross-sections completed
    undecodable: int = 0
    duplicate: int = 0
    inconsistent: int = 0
    incomplete: int = 0  # cross-sections dropped because they cannot complete
    replayed: int = 0  # records handled before a restart, skipped when read again

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _Assembly:
    instance: int
    key: Key
    first_seen: int  # the assembler's sequence number of its first record
    horizon_bars: int
    member_names: frozenset[str]
    signals: dict[str, WireSignal] = field(default_factory=dict)
    bound: dict[int, int] | None = None  # partition -> end offset queried after first_seen


class CrossSectionAssembler:
    """Assembles the cross-sections of one topic's partitions.

    ``starts``: partition -> the offset the reader starts at; ``resumed``:
    the positions committed before a restart (:class:`CommittedPosition`)."""

    def __init__(self, starts: Mapping[int, int], resumed: Mapping[int, CommittedPosition] | None = None,
                 on_skip: OnSkip | None = None):
        resumed = resumed or {}
        self.ledgers = {p: PartitionLedger(start, resumed.get(p)) for p, start in starts.items()}
        self.open: dict[Key, _Assembly] = {}
        self.waiting: set[int] = set()  # complete, not yet acknowledged
        self.seq = 0  # records read so far
        self.counts = AssemblyCounts()
        self._on_skip = on_skip
        self._instances = 0

    # ---------------------------------------------------------------- input

    def add(self, partition: int, offset: int, value: bytes | None) -> SignalCrossSection | None:
        """The record at ``offset`` of ``partition`` (each partition in offset
        order); returns the cross-section it completes, if it does."""
        self.seq += 1
        ledger = self.ledgers[partition]
        if ledger.replayed(offset):
            ledger.record(offset, None)
            self.counts.replayed += 1
            return None
        try:
            signal = _decode(value or b"")
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._skip("undecodable", ledger, partition, offset, str(exc))
        key = (signal.model_set, signal.ts, signal.cross_section_size)
        assembly = self.open.get(key)
        if assembly is None:
            self._instances += 1
            assembly = self.open[key] = _Assembly(self._instances, key, self.seq, signal.horizon_bars,
                                                  frozenset(signal.members))
        elif signal.symbol in assembly.signals:
            return self._skip("duplicate", ledger, partition, offset, f"{signal.symbol} at {key}")
        elif signal.horizon_bars != assembly.horizon_bars or frozenset(signal.members) != assembly.member_names:
            return self._skip("inconsistent", ledger, partition, offset,
                              f"{signal.symbol} at {key}: horizon or members differ from the cross-section's")
        assembly.signals[signal.symbol] = signal
        ledger.record(offset, assembly.instance)
        self.counts.signals += 1
        if len(assembly.signals) < signal.cross_section_size:
            return None
        del self.open[key]
        self.waiting.add(assembly.instance)
        self.counts.completed += 1
        return SignalCrossSection.of(list(assembly.signals.values()), assembly.instance)

    def reached(self, partition: int, offset: int) -> None:
        """``partition`` is read to its end, ``offset`` (its last stable offset)."""
        self.ledgers[partition].reached(offset)

    def bound(self, ends: Mapping[int, int], seen_by: int) -> None:
        """End offsets (counting open transactions) queried once :attr:`seq`
        was ``seen_by``: the bound of every open cross-section seen by then."""
        for assembly in self.open.values():
            if assembly.bound is None and assembly.first_seen <= seen_by:
                assembly.bound = dict(ends)

    def settle(self) -> int:
        """Drop the open cross-sections that can no longer complete (every
        partition read up to their bound); returns how many."""
        dead = [a for a in self.open.values() if a.bound is not None and self._past(a.bound)]
        for assembly in dead:
            del self.open[assembly.key]
        if dead:
            self._release({a.instance for a in dead})
            self.counts.incomplete += len(dead)
        return len(dead)

    def acknowledge(self, cross_section: SignalCrossSection) -> None:
        """The caller has taken ``cross_section``: its records are handled."""
        if cross_section.instance in self.waiting:
            self.waiting.discard(cross_section.instance)
            self._release({cross_section.instance})

    # ---------------------------------------------------------------- state

    def positions(self, owner: str = "", commit_no: int = 0) -> dict[int, CommittedPosition]:
        """What to commit now, per partition."""
        return {p: ledger.position(owner, commit_no) for p, ledger in self.ledgers.items()}

    @property
    def unbounded(self) -> int:
        """Open cross-sections still without a bound."""
        return sum(1 for a in self.open.values() if a.bound is None)

    @property
    def buffered_signals(self) -> int:
        return sum(len(a.signals) for a in self.open.values())

    def oldest_open_seq(self) -> int | None:
        return min((a.first_seen for a in self.open.values()), default=None)

    def done_with_oldest(self) -> set[int] | None:
        """The partitions that can contribute nothing more to the oldest open
        cross-section (read up to its bound); None when it has no bound yet."""
        if not self.open:
            return set()
        oldest = min(self.open.values(), key=lambda a: a.first_seen)
        if oldest.bound is None:
            return None
        return {p for p, ledger in self.ledgers.items() if ledger.read_to >= oldest.bound.get(p, 0)}

    def read_to(self) -> dict[int, int]:
        return {p: ledger.read_to for p, ledger in self.ledgers.items()}

    # ---------------------------------------------------------------- internals

    def _past(self, bound: Mapping[int, int]) -> bool:
        return all(ledger.read_to >= bound.get(p, 0) for p, ledger in self.ledgers.items())

    def _release(self, instances: set[int]) -> None:
        for ledger in self.ledgers.values():
            ledger.release(instances)

    def _skip(self, reason: SkipReason, ledger: PartitionLedger, partition: int, offset: int, detail: str) -> None:
        ledger.record(offset, None)
        setattr(self.counts, reason, getattr(self.counts, reason) + 1)
        if self._on_skip is not None:
            self._on_skip(reason, partition, offset, detail)
        return None
