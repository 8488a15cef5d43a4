"""The bar-time gate: a bar whose time lies far ahead of its partition's flow.

Kafka orders the bars of one partition; the barrier relies on that order to
know when a bar time can no longer receive bars (:mod:`stream.barrier`). A
single bar stamped years ahead (a producer's clock bug, a typo, a hostile
message) would move its partition past every bar still unread there, and
those bars would all arrive late. So each partition's bars pass this gate
first, in partition order.

A bar more than ``max_ahead_ms`` beyond the latest bar time the gate let
through on its partition is *held*, and the partition's next bar decides:

* it lies beyond that limit too, and within the limit of the held bar: the
  stream really moved on (a feed outage, a market closure, a halted symbol
  alone in its partition). The held bar goes through, then the next bar is
  judged against it;
* otherwise the held bar was a stray one. It is rejected with reason
  ``ts_ahead_of_stream`` (it goes to the dead-letter topic) and never moves
  a watermark or touches feature state; the next bar is judged as if the
  held bar had never come.

The decision depends only on the partition's own sequence of bars, never on
timing or on how partitions interleave, so a replay of the same offsets
decides the same way. A held bar waits for its partition's next bar; at the
end of a finite replay (``serve --idle-exit``) nothing can confirm it, and
:meth:`BarTimeGate.release_held` rejects it.

The first bar a partition ever delivers is judged against the last closed
bar time, when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from signalml.contracts import Bar
from stream.decode import Rejection

REASON = "ts_ahead_of_stream"


@dataclass(frozen=True)
class Source:
    """Where a bar came from, to dead-letter it: its bytes and Kafka position."""

    value: bytes
    key: bytes
    partition: int
    offset: int


@dataclass(frozen=True)
class Admitted:
    bar: Bar
    source: Source


@dataclass(frozen=True)
class Refused:
    rejection: Rejection
    source: Source


Decision = Admitted | Refused


class BarTimeGate:
    """Per-partition admission of bar times (see the module docstring)."""

    def __init__(self, max_ahead_ms: int):
        self.max_ahead_ms = int(max_ahead_ms)
        self.latest: dict[int, int] = {}  # partition -> latest admitted bar time
        self.held: dict[int, tuple[Bar, Source]] = {}

    def offer(self, partition: int, bar: Bar, source: Source, *, floor_ts: int | None = None) -> list[Decision]:
        """Judge ``bar``, the next bar of ``partition``. ``floor_ts``: the last
        closed bar time, the reference for a partition's first bar. Returns
        what this settles, in partition order (none while ``bar`` is held)."""
        decisions: list[Decision] = []
        held = self.held.pop(partition, None)
        if held is not None:
            held_ts = held[0].ts
            if self._beyond(partition, bar.ts, floor_ts) and abs(bar.ts - held_ts) <= self.max_ahead_ms:
                decisions.append(self._admit(partition, *held))
            else:
                decisions.append(self._refuse(partition, *held))
        if self._beyond(partition, bar.ts, floor_ts):
            self.held[partition] = (bar, source)
        else:
            decisions.append(self._admit(partition, bar, source))
        return decisions

    def release_held(self) -> list[Decision]:
        """Reject every held bar: nothing will come to confirm it (the end of
        a finite replay)."""
        decisions = [self._refuse(p, bar, source) for p, (bar, source) in sorted(self.held.items())]
        self.held.clear()
        return decisions

    def _reference(self, partition: int, floor_ts: int | None) -> int | None:
        latest = self.latest.get(partition)
        return latest if latest is not None else floor_ts

    def _beyond(self, partition: int, ts: int, floor_ts: int | None) -> bool:
        reference = self._reference(partition, floor_ts)
        return reference is not None and ts > reference + self.max_ahead_ms

    def _admit(self, partition: int, bar: Bar, source: Source) -> Admitted:
        if bar.ts > self.latest.get(partition, bar.ts - 1):
            self.latest[partition] = bar.ts
        return Admitted(bar, source)

    def _refuse(self, partition: int, bar: Bar, source: Source) -> Refused:
        reference = self.latest.get(partition)
        detail = (f"bar time {bar.ts} is more than {self.max_ahead_ms} ms beyond partition {partition}'s "
                  f"bar time {reference}, and the partition's next bar did not follow it")
        return Refused(Rejection(REASON, detail, bar.symbol, bar.ts), source)

    # ---------------------------------------------------------------- snapshot

    def state(self) -> dict:
        """Plain data; held bars keep their bytes, so a restart can still
        dead-letter them with their source offset."""
        return {
            "version": 1,
            "latest": {str(p): ts for p, ts in self.latest.items()},
            "held": [
                {"partition": p, "bar": msgspec.to_builtins(bar), "value": source.value, "key": source.key,
                 "offset": source.offset}
                for p, (bar, source) in sorted(self.held.items())
            ],
        }

    def restore(self, state: dict) -> None:
        if state.get("version") != 1:
            raise ValueError(f"unknown bar-time gate state version {state.get('version')!r}")
        self.latest = {int(p): int(ts) for p, ts in state["latest"].items()}
        self.held = {
            int(item["partition"]): (msgspec.convert(item["bar"], Bar),
                                     Source(bytes(item["value"]), bytes(item["key"]), int(item["partition"]),
                                            int(item["offset"])))
            for item in state["held"]
        }
