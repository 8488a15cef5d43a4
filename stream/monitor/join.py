"""Cross-section records joined with the one ``h`` bar times later.

The engine publishes one record per closed cross-section (closes of every
bar, scores of the scored symbols). The forward return of a symbol scored
at bar time ``t`` is its close in the record ``h`` records later divided
by its close at ``t``, minus one: the training label (``close[t + h] /
close[t] - 1`` on the bar clock). A symbol without a bar there has no
return (NaN); nothing is estimated before the later record has arrived.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from signalml.contracts import CrossSectionRecord


def forward_returns(start: CrossSectionRecord, later: CrossSectionRecord) -> np.ndarray:
    """Per symbol of ``start`` (its order): the return to ``later``'s close."""
    closes = np.asarray(start.closes, dtype=np.float64)
    if later.symbols == start.symbols:  # the usual case: the same listed names
        return np.asarray(later.closes, dtype=np.float64) / closes - 1.0
    found = dict(zip(later.symbols, later.closes))
    ends = np.array([found.get(symbol, np.nan) for symbol in start.symbols], dtype=np.float64)
    return ends / closes - 1.0


class RecordWindow:
    """One role's records since the oldest one whose returns have not
    matured, in bar-time order, each with its source offset."""

    def __init__(self, default_horizon_bars: int):
        self.default_horizon_bars = default_horizon_bars
        self.records: deque[tuple[int, CrossSectionRecord]] = deque()

    def horizon(self, record: CrossSectionRecord) -> int:
        return record.horizon_bars or self.default_horizon_bars

    def add(self, offset: int, record: CrossSectionRecord) -> None:
        self.records.append((offset, record))

    def matured(self):
        """Yield ``(record, horizon, returns)`` for each record at the head
        whose later record has arrived, dropping it; records without
        scores are dropped as soon as they reach the head (their closes
        served the records before them)."""
        while self.records:
            record = self.records[0][1]
            if not record.model_set:
                self.records.popleft()
                continue
            horizon = self.horizon(record)
            if len(self.records) <= horizon:
                return
            later = self.records[horizon][1]
            self.records.popleft()
            yield record, horizon, forward_returns(record, later)

    @property
    def offsets(self) -> list[int]:
        return [offset for offset, _ in self.records]

    def __len__(self) -> int:
        return len(self.records)
