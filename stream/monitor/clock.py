"""The bars topic's clock: recent bar times and the low watermark.

Bars of one symbol arrive in time order within its partition; the low
watermark (the smallest of the partitions' latest bar times) is the time
up to which every partition has delivered its bars. A return still missing
when the watermark is ``h + grace`` bar times past its signal will not
come (the symbol had no bar there) and is given up; before that, giving up
would depend on how partitions happened to interleave.

Store key ``clock`` -> ``{"marks": {partition: ts}, "times": [recent bar times]}``.
"""

from __future__ import annotations

import bisect
from typing import MutableMapping

KEY = "clock"


class BarClock:
    """``partitions``: of the bars topic; until each has delivered a bar
    there is no watermark (a partition not heard from yet may be far behind)."""

    def __init__(self, store: MutableMapping, history_bars: int, partitions: int):
        self.store = store
        self.history_bars = history_bars
        self.partitions = partitions

    def _low(self, marks: dict) -> int | None:
        return min(marks.values()) if len(marks) >= self.partitions else None

    def _state(self) -> dict:
        return self.store.get(KEY) or {"marks": {}, "times": []}

    def update(self, ts: int, partition: int) -> bool:
        """Note a bar; True when the low watermark moved forward."""
        state = self._state()
        marks, times = dict(state["marks"]), list(state["times"])
        before = self._low(marks)
        part = str(partition)
        changed = False
        if marks.get(part, -1) < ts:
            marks[part] = ts
            changed = True
        i = bisect.bisect_left(times, ts)
        if i == len(times) or times[i] != ts:
            times.insert(i, ts)
            del times[: max(0, len(times) - self.history_bars)]
            changed = True
        if changed:
            self.store[KEY] = {"marks": marks, "times": times}
        after = self._low(marks)
        return after is not None and (before is None or after > before)

    @property
    def low_watermark(self) -> int | None:
        return self._low(self._state()["marks"])

    def bars_after(self, ts: int) -> int:
        """Bar times in (ts, low watermark]: how far every partition is past ``ts``."""
        state = self._state()
        low = self._low(state["marks"])
        if low is None:
            return 0
        times = state["times"]
        return max(0, bisect.bisect_right(times, low) - bisect.bisect_right(times, ts))
