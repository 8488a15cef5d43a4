"""Simple returns over ``p`` bars: ``ret_p = close / close p bars ago - 1``."""

from __future__ import annotations

import math

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Bar, Kernel, Step, divide
from stream.features.window import ring_read, ring_write


class Return(Kernel):
    """``ret_{p}`` for each period. First value on bar ``p + 1``."""

    kind = "ret"

    def __init__(self, periods: tuple[int, ...] = (1,), capacity: int = 1):
        self.periods = tuple(int(p) for p in periods)
        self.output_names = tuple(f"ret_{p}" for p in self.periods)
        self.warmup_bars = tuple(p + 1 for p in self.periods)
        self._bars_back = np.asarray(self.periods, dtype=np.int64)
        self._ring_bars = max(self.periods)
        super().__init__(capacity)

    def params(self):
        return {"periods": list(self.periods)}

    def _declare(self):
        return {"bars_seen": (np.int64, (), 0), "closes": (np.float64, (self._ring_bars,), np.nan)}

    def _update(self, step: Step, bars: Bars, out: np.ndarray) -> None:
        close = bars.close
        np.divide(step.wide(close, len(self.periods)), ring_read(self.closes, step, self._bars_back), out=out)
        out -= 1.0
        if step.least < self._ring_bars:
            out[step.seen[None, :] < self._bars_back[:, None]] = np.nan
        ring_write(self.closes, step, close)
        self.bars_seen[step.rows.sel] += 1

    def _update_one(self, row: int, seen: int, bar: Bar) -> list[float]:
        close = bar[3]
        ring = self._ring_bars
        out = [
            math.nan if seen < p else divide(close, self.closes.item((seen - p) % ring, row)) - 1.0 for p in self.periods
        ]
        self.closes[seen % ring, row] = close
        self.bars_seen[row] = seen + 1
        return out
