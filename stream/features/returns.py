"""Simple returns over ``p`` bars: ``ret_p = close / close p bars ago - 1``."""

from __future__ import annotations

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Kernel
from stream.features.rows import Rows


class Return(Kernel):
    """``ret_{p}`` for each period. First value on bar ``p + 1``."""

    kind = "ret"

    def __init__(self, periods: tuple[int, ...] = (1,), capacity: int = 1):
        self.periods = tuple(int(p) for p in periods)
        self.output_names = tuple(f"ret_{p}" for p in self.periods)
        self.warmup_bars = tuple(p + 1 for p in self.periods)
        self._period = np.asarray(self.periods, dtype=np.int64)[:, None]
        self._ring_bars = max(self.periods)
        super().__init__(capacity)

    def params(self):
        return {"periods": list(self.periods)}

    def _declare(self):
        return {"bars_seen": (np.int64, (), 0), "closes": (np.float64, (self._ring_bars,), np.nan)}

    def _update(self, rows: Rows, bars: Bars, out: np.ndarray) -> None:
        sel = rows.sel
        close = bars.close
        seen = self.bars_seen[sel]
        ring = self._ring_bars
        flat = self.closes.reshape(-1)
        back = seen[None, :] - self._period  # bar index of the close p bars ago
        then = flat.take((back % ring) * self._capacity + rows.index)
        np.divide(close, then, out=out)
        out -= 1.0
        if seen.min() < self._period.max():
            out[back < 0] = np.nan
        flat[(seen % ring) * self._capacity + rows.index] = close
        self.bars_seen[sel] = seen + 1
