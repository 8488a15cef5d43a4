"""A fixed-size window of the latest values (the rolling IC)."""

from __future__ import annotations

from collections import deque

import numpy as np


class RollingWindow:
    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.values: deque[float] = deque(maxlen=size)

    def update(self, x: float) -> None:
        self.values.append(float(x))

    @property
    def full(self) -> bool:
        return len(self.values) == self.size

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    def reset(self) -> None:
        self.values.clear()

    def state(self) -> dict:
        return {"values": list(self.values)}

    def restore(self, state: dict) -> None:
        self.values = deque((float(v) for v in state["values"]), maxlen=self.size)
