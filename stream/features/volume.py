"""Volume relative to its simple moving average: ``volume / SMA_p(volume)``."""

from __future__ import annotations

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Kernel
from stream.features.rows import Rows
from stream.features.window import last_values, recompute_cadence


class VolumeRatio(Kernel):
    """``volume_ratio_{p}``; NaN while the SMA is 0 (a window of zero volume).

    The window sum is kept by adding the new volume and dropping the oldest;
    it is rebuilt exactly from the ring every :func:`recompute_cadence` bars
    so drift stays bounded. Whether the SMA is 0 comes from an integer count
    of non-zero volumes, exact however the sum has drifted. First value on
    bar ``p``.
    """

    kind = "volume_ratio"

    def __init__(self, periods: tuple[int, ...] = (20,), capacity: int = 1):
        self.periods = tuple(int(p) for p in periods)
        self.output_names = tuple(f"volume_ratio_{p}" for p in self.periods)
        self.warmup_bars = self.periods
        self._period = np.asarray(self.periods, dtype=np.int64)[:, None]
        self._period_f = self._period.astype(np.float64)
        self._cadence = tuple(recompute_cadence(p) for p in self.periods)
        self._ring_bars = max(self.periods)
        super().__init__(capacity)

    def params(self):
        return {"periods": list(self.periods)}

    def _declare(self):
        n = (len(self.periods),)
        return {
            "bars_seen": (np.int64, (), 0),
            "sum": (np.float64, n, 0.0),
            "nonzero": (np.int64, n, 0),
            "volumes": (np.float64, (self._ring_bars,), np.nan),
        }

    def _update(self, rows: Rows, bars: Bars, out: np.ndarray) -> None:
        sel = rows.sel
        volume = bars.volume
        seen = self.bars_seen[sel]
        ring = self._ring_bars
        flat = self.volumes.reshape(-1)
        back = seen[None, :] - self._period  # the volume leaving the window
        leaving = flat.take((back % ring) * self._capacity + rows.index)
        warming = bool(seen.min() < self._period.max())
        if warming:
            leaving[back < 0] = 0.0
        total = self.sum[:, sel] + volume - leaving
        nonzero = self.nonzero[:, sel] + (volume != 0.0) - (leaving != 0.0)
        flat[(seen % ring) * self._capacity + rows.index] = volume
        seen_after = seen + 1
        for i, (period, cadence) in enumerate(zip(self.periods, self._cadence)):
            rebuild = (seen_after % cadence == 0) & (seen_after >= period)
            if rebuild.any():
                window = last_values(self.volumes, rows.index[rebuild], seen_after[rebuild], period)
                total[i, rebuild] = window.sum(axis=1)
                nonzero[i, rebuild] = np.count_nonzero(window, axis=1)
        np.divide(volume, total / self._period_f, out=out)
        out[nonzero == 0] = np.nan
        if warming:
            out[seen[None, :] < self._period - 1] = np.nan
        self.sum[:, sel] = total
        self.nonzero[:, sel] = nonzero
        self.bars_seen[sel] = seen_after
