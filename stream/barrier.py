"""The cross-section barrier: bars in, the complete cross-section of each bar time out.

Bars of one bar time arrive spread over the partitions of the ``bars``
topic, each partition in its own order, interleaved however the consumer
delivers them. Which bars form the cross-section of a bar time must depend
on what the partitions hold, never on that interleaving or on the machine's
speed: that is what makes a replay after a crash, a broker restart or a slow
partition assemble exactly the same cross-sections.

A partition *can no longer deliver* bar time ``t`` once it has delivered a
bar of a later bar time (its bars are in bar-time order; a bar older than
one its partition already delivered is late, see below), or while it is
*caught up*: the consumer has read all it holds (its end-of-partition event
came after its last bar). A cross-section closes, strictly in bar-time order,
at the first of:

* **watermark**: every assigned partition has delivered a bar of a later
  bar time. Nothing older can come from any partition: the set of bars is
  final, whatever the timing;
* **complete**: every expected symbol (those of the previous closed
  cross-section) has its bar, and no partition can deliver the bar time any
  more. A symbol that joins never blocks, one that leaves blocks only until
  the watermark or the timeout;
* **timeout**: ``timeout_s`` of wall time since the first bar of that bar
  time arrived, *and* no partition can deliver the bar time any more. On a
  live feed, whose partitions are caught up, this closes a bar time that
  misses a symbol. While a backlog is read it never fires early: a partition
  that still holds unread bars of that bar time keeps it open, however long
  the consumer takes to get to them.

A bar is *late* when its bar time is already closed, or when its partition
already delivered a later bar time (a partition out of bar-time order: which
cross-section such a bar would join would depend on timing). It is returned
to the caller (which still applies it to the feature state) and counted,
never scored. Only one bar per symbol is kept per bar time; the validator
upstream has already rejected duplicates.

The barrier also tells the engine which partitions run so far ahead that
their bars only pile up (:meth:`CrossSectionBarrier.ahead_partitions`), so
it can pause them: pending bars stay bounded, whatever order the partitions
deliver in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import msgspec

from signalml.contracts import Bar

CloseReason = Literal["complete", "watermark", "timeout", "flush"]


@dataclass(frozen=True)
class CrossSection:
    """The bars of one bar time, sorted by symbol, and why it closed."""

    ts: int
    bars: tuple[Bar, ...]
    reason: CloseReason

    @property
    def symbols(self) -> list[str]:
        return [bar.symbol for bar in self.bars]


@dataclass
class BarrierCounts:
    closed: dict[str, int] = field(default_factory=lambda: {"complete": 0, "watermark": 0, "timeout": 0, "flush": 0})
    late: int = 0


class CrossSectionBarrier:
    """Assembles cross-sections. ``partitions`` are the assigned partitions
    of the bars topic; call :meth:`assign` when the assignment changes."""

    def __init__(
        self,
        timeout_s: float,
        partitions: list[int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.timeout_s = timeout_s
        self.clock = clock
        self.partitions: set[int] = set(partitions or [])
        self.partition_ts: dict[int, int] = {}
        self.drained: set[int] = set()
        self.pending: dict[int, dict[str, Bar]] = {}
        self.opened_at: dict[int, float] = {}
        self.expected: frozenset[str] = frozenset()
        self.last_closed_ts: int | None = None
        self.counts = BarrierCounts()
        self._stale = True  # changed other than by one bar since the last due(): add() runs it in full

    def assign(self, partitions: list[int]) -> None:
        self.partitions = set(partitions)
        self.partition_ts = {p: ts for p, ts in self.partition_ts.items() if p in self.partitions}
        self.drained &= self.partitions
        self._stale = True

    def mark_drained(self, partition: int) -> list[CrossSection]:
        """The consumer reached the end of ``partition`` (its EOF event)."""
        self.drained.add(partition)
        return self.due()

    def add(self, bar: Bar, partition: int) -> tuple[list[CrossSection], bool]:
        """Take one bar. Returns the cross-sections this closes and whether the
        bar itself was late (its bar time already closed, or older than a bar
        its partition already delivered)."""
        self.drained.discard(partition)
        previous = self.partition_ts.get(partition)
        behind_partition = previous is not None and bar.ts < previous
        advanced = previous is None or bar.ts > previous
        if advanced:
            self.partition_ts[partition] = bar.ts
        if behind_partition or (self.last_closed_ts is not None and bar.ts <= self.last_closed_ts):
            self.counts.late += 1
            return self._due_after(advanced, None), True
        bars = self.pending.get(bar.ts)
        if bars is None:
            bars = self.pending[bar.ts] = {}
            self.opened_at[bar.ts] = self.clock()
        bars.setdefault(bar.symbol, bar)
        return self._due_after(advanced, bar.ts), False

    def _due_after(self, advanced: bool, joined_ts: int | None) -> list[CrossSection]:
        """:meth:`due` after one bar, skipped where that bar cannot have made
        any rule hold. Since the last :meth:`due`, the oldest pending bar time
        could not close; one more bar changes that only by moving its
        partition to a later bar time (watermark, settled), by bringing the
        oldest bar time to as many symbols as are expected (complete), or
        because the oldest bar time's timeout has passed meanwhile. Dropping
        its partition from the drained ones can only keep a bar time open.
        So the result is the one :meth:`due` gives after every bar; a bar
        time of 500 symbols runs the full rules a few times, not 500."""
        if advanced or self._stale or not self.pending:
            return self.due()
        oldest = min(self.pending)
        if joined_ts == oldest and self.expected and len(self.pending[oldest]) >= len(self.expected):
            return self.due()
        if self.clock() - self.opened_at[oldest] >= self.timeout_s:
            return self.due()
        return []

    def watermark(self) -> int | None:
        """The smallest latest bar time over the assigned partitions, or None
        while some assigned partition has delivered nothing."""
        if not self.partitions or any(p not in self.partition_ts for p in self.partitions):
            return None
        return min(self.partition_ts[p] for p in self.partitions)

    def due(self) -> list[CrossSection]:
        """Close, oldest first, every pending bar time whose rule holds."""
        self._stale = False
        closed: list[CrossSection] = []
        now = self.clock()
        watermark = self.watermark()
        while self.pending:
            ts = min(self.pending)
            bars = self.pending[ts]
            if watermark is not None and watermark > ts:
                reason: CloseReason = "watermark"
            elif not self._settled(ts):
                break  # some partition may still deliver bars of ts
            elif self.expected and self.expected.issubset(bars):
                reason = "complete"
            elif now - self.opened_at[ts] >= self.timeout_s:
                reason = "timeout"
            else:
                break
            closed.append(self._close(ts, reason))
        return closed

    def _settled(self, ts: int) -> bool:
        """No partition can still deliver a bar of bar time ``ts``: each has
        moved past it or is caught up."""
        return all(p in self.drained or self.partition_ts.get(p, -1) > ts for p in self.partitions)

    def ahead_partitions(self, max_pending_bars: int) -> set[int]:
        """Partitions to pause while more than ``max_pending_bars`` bars are
        pending: those that have moved past the oldest pending bar times that
        hold that many bars. The oldest bar times wait only for partitions
        that have not (those stay active), so they can still close, and a
        paused partition is resumed as soon as the bar times it is needed
        for are among the oldest again."""
        if self.pending_bars() <= max_pending_bars:
            return set()
        held = 0
        for horizon in sorted(self.pending):
            held += len(self.pending[horizon])
            if held >= max_pending_bars:
                break
        return {p for p in self.partitions if self.partition_ts.get(p, -1) > horizon}

    def pending_bars(self) -> int:
        return sum(len(bars) for bars in self.pending.values())

    def flush(self) -> list[CrossSection]:
        """Close everything pending (at shutdown of a finite replay)."""
        return [self._close(ts, "flush") for ts in sorted(self.pending)]

    def _close(self, ts: int, reason: CloseReason) -> CrossSection:
        bars = self.pending.pop(ts)
        del self.opened_at[ts]
        self.expected = frozenset(bars)
        self.last_closed_ts = ts
        self.counts.closed[reason] += 1
        return CrossSection(ts, tuple(bars[s] for s in sorted(bars)), reason)

    def next_deadline_s(self) -> float | None:
        """Seconds until the oldest pending bar time may time out (for poll
        timeouts); None while nothing can time out."""
        if not self.pending:
            return None
        oldest = min(self.pending)
        if not self._settled(oldest):
            return None
        return max(0.0, self.opened_at[oldest] + self.timeout_s - self.clock())

    # ---------------------------------------------------------------- snapshot

    def state(self) -> dict:
        """Data for msgspec, pending bars included: the engine commits the
        consumed offsets with this state, so bars consumed but not yet closed
        into a cross-section must survive a restart inside the snapshot. The
        pending bars stay :class:`Bar` structs: msgspec encodes them as the
        maps ``to_builtins`` would make, without building those maps (a
        backlog commits with thousands pending)."""
        return {
            "version": 1,
            "expected": sorted(self.expected),
            "last_closed_ts": self.last_closed_ts,
            "partition_ts": {str(p): ts for p, ts in self.partition_ts.items()},
            "pending": [bar for ts in sorted(self.pending) for bar in self.pending[ts].values()],
            "late": self.counts.late,
            "closed": dict(self.counts.closed),
        }

    def restore(self, state: dict) -> None:
        """Continue from :meth:`state`; pending bar times restart their timeout."""
        if state.get("version") != 1:
            raise ValueError(f"unknown barrier state version {state.get('version')!r}")
        self.expected = frozenset(state["expected"])
        self.last_closed_ts = state["last_closed_ts"]
        self.partition_ts = {int(p): int(ts) for p, ts in state["partition_ts"].items()}
        self.counts = BarrierCounts(closed=dict(state["closed"]), late=int(state["late"]))
        self._stale = True
        self.pending.clear()
        self.opened_at.clear()
        now = self.clock()
        for raw in state["pending"]:
            bar = msgspec.convert(raw, Bar)
            self.pending.setdefault(bar.ts, {})[bar.symbol] = bar
            self.opened_at.setdefault(bar.ts, now)
