"""Volume relative to its simple moving average: ``volume / SMA_p(volume)``."""

from __future__ import annotations

import math

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Bar, Kernel, PerPeriod, Step, divide, maximum
from stream.features.window import (
    COLLAPSE,
    recompute_cadence,
    ring_column,
    ring_read,
    ring_window,
    ring_write,
    rows_to_rebuild,
    window_sum,
)


class VolumeRatio(Kernel):
    """``volume_ratio_{p}``; NaN while the SMA is 0 (a window of zero volume).
    Volumes so small that their mean underflows to 0 (subnormal floats)
    give ``volume / sum * p`` instead of an infinite ratio.

    The window sum is kept by adding the new volume and dropping the oldest;
    it is rebuilt exactly from the ring every :func:`recompute_cadence` bars
    so drift stays bounded, and when it falls below :data:`.window.COLLAPSE`
    of its peak since the last rebuild (a huge volume leaving the window),
    where that drift would no longer be small beside it: split-adjusted
    volumes are fractional, so the sums round. Whether the SMA is 0 comes
    from an integer count of non-zero volumes, exact however the sum has
    drifted. First value on bar ``p``.
    """

    kind = "volume_ratio"

    def __init__(self, periods: tuple[int, ...] = (20,), capacity: int = 1):
        self.periods = tuple(int(p) for p in periods)
        self.output_names = tuple(f"volume_ratio_{p}" for p in self.periods)
        self.warmup_bars = self.periods
        self._bars_back = np.asarray(self.periods, dtype=np.int64)
        self._period = self._bars_back[:, None]
        self._period_f = PerPeriod(self.periods)
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
            "peak": (np.float64, n, 0.0),  # largest sum since the last rebuild
            "volumes": (np.float64, (self._ring_bars,), np.nan),
        }

    def _update(self, step: Step, bars: Bars, out: np.ndarray) -> None:
        rows = step.rows
        volume = step.wide(bars.volume, len(self.periods))
        leaving = ring_read(self.volumes, step, self._bars_back)  # the volume leaving the window
        warming = step.least < self._ring_bars
        if warming:
            leaving[step.seen[None, :] < self._period] = 0.0
        total, nonzero, peak = rows.pick(self.sum), rows.pick(self.nonzero), rows.pick(self.peak)
        total += volume
        total -= leaving
        nonzero += volume != 0.0
        nonzero -= leaving != 0.0
        np.maximum(peak, total, out=peak)
        collapsed = total < COLLAPSE * peak
        collapsed_periods = collapsed.any(axis=1).tolist()
        ring_write(self.volumes, step, bars.volume)
        for i, (period, cadence) in enumerate(zip(self.periods, self._cadence)):
            rebuild = rows_to_rebuild(step, 1, period, cadence, collapsed[i] if collapsed_periods[i] else None)
            if rebuild is not None:
                window = ring_window(self.volumes, step, period, rebuild)
                total[i, rebuild] = window_sum(window)
                nonzero[i, rebuild] = np.count_nonzero(window, axis=0)
                peak[i, rebuild] = total[i, rebuild]
        period_f = self._period_f.wide(rows.size)
        sma = total / period_f
        np.divide(volume, sma, out=out)
        if not sma.all():  # volumes so small (subnormal) that their mean underflows to 0
            tiny = (sma == 0.0) & (total > 0.0)
            out[tiny] = (volume / total * period_f)[tiny]
        if nonzero.min() == 0:
            out[nonzero == 0] = np.nan
        if warming:
            out[step.seen[None, :] < self._period - 1] = np.nan
        rows.put_back(self.sum, total)
        rows.put_back(self.nonzero, nonzero)
        rows.put_back(self.peak, peak)
        self.bars_seen[rows.sel] += 1

    def _update_one(self, row: int, seen: int, bar: Bar) -> list[float]:
        volume = bar[4]
        ring = self._ring_bars
        leaving = [0.0 if seen < p else self.volumes.item((seen - p) % ring, row) for p in self.periods]
        sums, nonzero, peaks = self.sum[:, row].tolist(), self.nonzero[:, row].tolist(), self.peak[:, row].tolist()
        self.volumes[seen % ring, row] = volume
        seen_after = seen + 1
        out = []
        for i, (period, cadence) in enumerate(zip(self.periods, self._cadence)):
            sums[i] = sums[i] + volume - leaving[i]
            nonzero[i] = nonzero[i] + (volume != 0.0) - (leaving[i] != 0.0)
            peaks[i] = maximum(peaks[i], sums[i])
            if (seen_after % cadence == 0 or sums[i] < COLLAPSE * peaks[i]) and seen_after >= period:
                window = ring_column(self.volumes, row, seen, period)
                sums[i] = window_sum(window).item()
                nonzero[i] = int(np.count_nonzero(window))
                peaks[i] = sums[i]
            if nonzero[i] == 0 or seen < period - 1:
                out.append(math.nan)
            elif sums[i] / period == 0.0 and sums[i] > 0.0:  # see _update: the mean underflows
                out.append(volume / sums[i] * period)
            else:
                out.append(divide(volume, sums[i] / period))
        self.sum[:, row] = sums
        self.nonzero[:, row] = nonzero
        self.peak[:, row] = peaks
        self.bars_seen[row] = seen + 1
        return out
