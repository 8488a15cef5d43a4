"""River's drift detectors (ADWIN, Page-Hinkley) with a plain-data state.

A River detector is not plain data, so its state here is the inputs it has
seen since it last fired: :meth:`restore` replays them into a fresh
detector, which is then in exactly the state the original was in (both
detectors are deterministic). After a detection the detector starts afresh
(the new regime is the new reference), and at ``memory`` inputs it is
rebuilt from the latest half, the same way live and on restore.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from river import drift


class ReplayedDetector:
    def __init__(self, factory: Callable[[], object], memory: int):
        if memory < 4:
            raise ValueError(f"memory must be >= 4, got {memory}")
        self.factory = factory
        self.memory = memory
        self._rebuild([])

    def _rebuild(self, values: list[float]) -> None:
        self.detector = self.factory()
        self.values: list[float] = []
        for x in values:
            self.detector.update(x)
            self.values.append(x)
            if self.detector.drift_detected:
                self.detector, self.values = self.factory(), []

    def update(self, x: float) -> bool:
        """Add one value; True when the detector fires on it."""
        x = float(x)
        self.detector.update(x)
        self.values.append(x)
        if self.detector.drift_detected:
            self.detector, self.values = self.factory(), []
            return True
        if len(self.values) >= self.memory:
            self._rebuild(self.values[-(self.memory // 2):])
        return False

    def mean(self, last: int | None = None) -> float:
        values = self.values[-last:] if last else self.values
        return float(np.mean(values)) if values else float("nan")

    def state(self) -> dict:
        return {"values": list(self.values)}

    def restore(self, state: dict) -> None:
        self._rebuild([float(v) for v in state["values"]])


def adwin(delta: float, memory: int) -> ReplayedDetector:
    """ADWIN: a change in the mean, either way."""
    return ReplayedDetector(lambda: drift.ADWIN(delta=delta), memory)


def page_hinkley_down(delta: float, threshold: float, min_bars: int, memory: int) -> ReplayedDetector:
    """Page-Hinkley for a fall in the mean (a decaying IC)."""
    return ReplayedDetector(
        lambda: drift.PageHinkley(min_instances=min_bars, delta=delta, threshold=threshold, mode="down"), memory
    )
