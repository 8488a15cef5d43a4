"""Rolling standard deviation (ddof = 1) of one-bar returns: ``vol_p``."""

from __future__ import annotations

import math

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Bar, Kernel, PerPeriod, Step, divide, maximum, widened
from stream.features.window import (
    COLLAPSE,
    exact_moments,
    recompute_cadence,
    ring_column,
    ring_read,
    ring_window,
    ring_write,
    rows_to_rebuild,
    slide_moments,
    slide_moments_in_place,
)


class Volatility(Kernel):
    """``vol_{p}``: sample standard deviation of the last ``p`` returns
    ``close / previous close - 1``. First value on bar ``p + 1``.

    Mean and sum of squared deviations are kept with Welford's update while
    the window fills, then with its add-and-drop form, which avoids the
    cancellation of a running sum of squares; they are rebuilt exactly (two
    passes over the ring) every :func:`recompute_cadence` bars, and whenever
    m2 collapses below a fraction of its peak since the last rebuild (see
    :data:`.window.COLLAPSE`).
    """

    kind = "vol"

    def __init__(self, periods: tuple[int, ...] = (20,), capacity: int = 1):
        self.periods = tuple(int(p) for p in periods)
        self.output_names = tuple(f"vol_{p}" for p in self.periods)
        self.warmup_bars = tuple(p + 1 for p in self.periods)
        self._bars_back = np.asarray(self.periods, dtype=np.int64)  # the return leaving the window
        self._period = self._bars_back[:, None]
        self._period_f = PerPeriod(self.periods)
        self._ddof_scale = PerPeriod([p - 1.0 for p in self.periods])
        self._cadence = tuple(recompute_cadence(p) for p in self.periods)
        self._ring_bars = max(self.periods)
        super().__init__(capacity)

    def params(self):
        return {"periods": list(self.periods)}

    def _declare(self):
        n = (len(self.periods),)
        return {
            "bars_seen": (np.int64, (), 0),
            "prev_close": (np.float64, (), np.nan),
            "mean": (np.float64, n, 0.0),
            "m2": (np.float64, n, 0.0),
            "m2_peak": (np.float64, n, 0.0),  # largest m2 since the last rebuild
            "returns": (np.float64, (self._ring_bars,), np.nan),  # return of bar j in slot j % ring
        }

    def _update(self, step: Step, bars: Bars, out: np.ndarray) -> None:
        self.advance(step, bars, out)

    def advance(self, step: Step, bars: Bars, out: np.ndarray) -> np.ndarray:
        """:meth:`_update`, returning the bar's return [k] (NaN on a first bar)."""
        rows = step.rows
        close = bars.close
        ret = close / self.prev_close[rows.sel]
        ret -= 1.0
        leaving = ring_read(self.returns, step, self._bars_back)
        mean, m2, m2_peak = rows.pick(self.mean), rows.pick(self.m2), rows.pick(self.m2_peak)
        # ``seen`` is also the number of returns once this bar's is in.
        warming = step.least <= self._ring_bars
        if warming:
            back = step.seen[None, :] - self._period
            mean[...], m2[...] = slide_moments(
                mean, m2, ret, leaving, self._period_f.column, count=step.seen.astype(np.float64), filling=back <= 0
            )
            if step.least == 0:
                first = step.seen == 0  # no return yet
                mean[:, first] = 0.0
                m2[:, first] = 0.0
        else:
            slide_moments_in_place(mean, m2, widened(ret, len(self.periods)), leaving, self._period_f.wide(rows.size))
        np.maximum(m2_peak, m2, out=m2_peak)
        inexact = m2 < COLLAPSE * m2_peak
        inexact_periods = inexact.any(axis=1).tolist()
        ring_write(self.returns, step, ret)
        for i, (period, cadence) in enumerate(zip(self.periods, self._cadence)):
            rebuild = rows_to_rebuild(step, 0, period, cadence, inexact[i] if inexact_periods[i] else None)
            if rebuild is not None:
                mean[i, rebuild], m2[i, rebuild] = exact_moments(ring_window(self.returns, step, period, rebuild))
                m2_peak[i, rebuild] = m2[i, rebuild]
        np.maximum(m2, 0.0, out=out)
        out /= self._ddof_scale.wide(rows.size)
        np.sqrt(out, out=out)
        if warming:
            out[back < 0] = np.nan
        if not rows.contiguous:  # the picks were copies
            for name, picked in (("mean", mean), ("m2", m2), ("m2_peak", m2_peak)):
                rows.put_back(getattr(self, name), picked)
        self.prev_close[rows.sel] = close
        self.bars_seen[rows.sel] += 1
        return ret

    def _update_one(self, row: int, seen: int, bar: Bar) -> list[float]:
        return self.advance_one(row, seen, bar[3])[1]

    def advance_one(self, row: int, seen: int, close: float) -> tuple[float, list[float]]:
        """:meth:`_update_one`, also returning the bar's return."""
        ret = divide(close, self.prev_close.item(row)) - 1.0  # NaN on a first bar
        ring = self._ring_bars
        leaving = [self.returns.item((seen - p) % ring, row) for p in self.periods]
        means, m2s, peaks = self.mean[:, row].tolist(), self.m2[:, row].tolist(), self.m2_peak[:, row].tolist()
        self.returns[seen % ring, row] = ret
        out = []
        for i, (period, cadence) in enumerate(zip(self.periods, self._cadence)):
            mean, m2 = means[i], m2s[i]
            if seen == 0:  # no return yet
                mean = m2 = 0.0
            elif seen <= period:  # Welford's add while the window fills
                delta = ret - mean
                mean = mean + delta / seen
                m2 = m2 + delta * (ret - mean)
            else:
                change = ret - leaving[i]
                slid = mean + change / period
                m2 = m2 + change * ((ret - slid) + (leaving[i] - mean))
                mean = slid
            peak = maximum(peaks[i], m2)
            if (seen % cadence == 0 or m2 < COLLAPSE * peak) and seen >= period:
                mean, m2 = (x.item() for x in exact_moments(ring_column(self.returns, row, seen, period)))
                peak = m2
            out.append(math.nan if seen < period else math.sqrt(maximum(m2, 0.0) / (period - 1.0)))
            means[i], m2s[i], peaks[i] = mean, m2, peak
        self.mean[:, row], self.m2[:, row], self.m2_peak[:, row] = means, m2s, peaks
        self.prev_close[row] = close
        self.bars_seen[row] = seen + 1
        return ret, out
