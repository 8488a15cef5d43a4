"""Position of the close inside TA-Lib's Bollinger bands ``BBANDS(close, p, k, k)``.

The middle band is TA-Lib's SMA, in its arithmetic (a running sum that adds
the new close and drops the oldest, divided by ``p``): equal bit for bit.
The deviation is the population standard deviation of the window; TA-Lib's
published source gets it from a running sum of squares, but that formula
cancels badly on a low-volatility stock (off by more than 1e-9 in the
position against TA-Lib's own binary, which is within ~1e-12 of the exact
variance). So the variance here is Welford's add-and-drop over the bounded
ring of closes, rebuilt exactly (two passes over the window) every
:func:`recompute_cadence` bars and whenever m2 collapses below a fraction of
its peak since the last rebuild (see :data:`.window.COLLAPSE`). As in TA-Lib, a variance below 1e-14 is
a deviation of 0.
"""

from __future__ import annotations

import math

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Bar, Kernel, PerPeriod, Step, maximum
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

# TA-Lib's TA_IS_ZERO_OR_NEG: a variance below this is a deviation of 0.
TA_ZERO = 1e-14


class BollingerPosition(Kernel):
    """``bb_position_{p}`` = (close - lower) / (upper - lower), 0.5 when the
    bands have zero width. First value on bar ``p`` (TA-Lib's lookback p-1)."""

    kind = "bb_position"

    def __init__(self, periods: tuple[int, ...] = (20,), nbdev: float = 2.0, capacity: int = 1):
        self.periods = tuple(int(p) for p in periods)
        self.nbdev = float(nbdev)
        self.output_names = tuple(f"bb_position_{p}" for p in self.periods)
        self.warmup_bars = self.periods
        self._bars_back = np.asarray(self.periods, dtype=np.int64) - 1  # the close that leaves the SMA sum
        self._period = self._bars_back[:, None] + 1
        self._period_f = PerPeriod(self.periods)
        self._cadence = tuple(recompute_cadence(p) for p in self.periods)
        self._ring_bars = max(self.periods)
        super().__init__(capacity)

    def params(self):
        return {"periods": list(self.periods), "nbdev": self.nbdev}

    def _declare(self):
        n = (len(self.periods),)
        return {
            "bars_seen": (np.int64, (), 0),
            "sum": (np.float64, n, 0.0),  # TA-Lib's SMA periodTotal: the last p-1 closes
            "mean": (np.float64, n, 0.0),  # Welford moments of the last p closes
            "m2": (np.float64, n, 0.0),
            "m2_peak": (np.float64, n, 0.0),  # largest m2 since the last rebuild
            "next_leaving": (np.float64, n, 0.0),  # the close p-1 bars back: leaves next bar
            "closes": (np.float64, (self._ring_bars,), np.nan),  # bar j in slot j % ring
        }

    def _update(self, step: Step, bars: Bars, out: np.ndarray) -> None:
        rows = step.rows
        close = step.wide(bars.close, len(self.periods))
        periods = self._period_f.wide(rows.size)
        # TA-Lib's SMA drops the close p-1 bars back right after using it; the
        # same close leaves the Welford window on the next bar.
        dropped = ring_read(self.closes, step, self._bars_back)
        total = rows.pick(self.sum)
        total += close
        mean, m2, m2_peak = rows.pick(self.mean), rows.pick(self.m2), rows.pick(self.m2_peak)
        leaving = rows.pick(self.next_leaving)
        warming = step.least < self._ring_bars
        if warming:
            back = step.seen[None, :] - self._period  # bar leaving the Welford window now
            dropped[back < -1] = 0.0
            mean[...], m2[...] = slide_moments(
                mean, m2, close, leaving, periods, count=(step.seen + 1).astype(np.float64), filling=back < 0
            )
        else:
            slide_moments_in_place(mean, m2, close, leaving, periods)
        np.maximum(m2_peak, m2, out=m2_peak)
        collapsed = m2 < COLLAPSE * m2_peak
        collapsed_periods = collapsed.any(axis=1).tolist()
        ring_write(self.closes, step, bars.close)
        for i, (period, cadence) in enumerate(zip(self.periods, self._cadence)):
            rebuild = rows_to_rebuild(step, 1, period, cadence, collapsed[i] if collapsed_periods[i] else None)
            if rebuild is not None:
                mean[i, rebuild], m2[i, rebuild] = exact_moments(ring_window(self.closes, step, period, rebuild))
                m2_peak[i, rebuild] = m2[i, rebuild]
        middle = total / periods
        variance = m2 / periods
        deviation = np.sqrt(variance)
        if not variance.min() >= TA_ZERO:
            deviation[~(variance >= TA_ZERO)] = 0.0
        deviation *= self.nbdev
        upper = middle + deviation
        lower = np.subtract(middle, deviation, out=middle)
        width = np.subtract(upper, lower, out=deviation)
        np.subtract(close, lower, out=out)
        out /= width
        if not width.min() > 0.0:
            out[width == 0.0] = 0.5
        if warming:
            out[back < -1] = np.nan
        total -= dropped
        leaving[...] = dropped
        if not rows.contiguous:  # the picks were copies
            picked = {"sum": total, "mean": mean, "m2": m2, "m2_peak": m2_peak, "next_leaving": leaving}
            for name, values in picked.items():
                rows.put_back(getattr(self, name), values)
        self.bars_seen[rows.sel] += 1

    def _update_one(self, row: int, seen: int, bar: Bar) -> list[float]:
        close = bar[3]
        ring = self._ring_bars
        dropped = [0.0 if seen < p - 1 else self.closes.item((seen - p + 1) % ring, row) for p in self.periods]
        sums, means, m2s, peaks, leaving = (
            getattr(self, name)[:, row].tolist() for name in ("sum", "mean", "m2", "m2_peak", "next_leaving")
        )
        self.closes[seen % ring, row] = close
        seen_after = seen + 1
        out = []
        for i, (period, cadence) in enumerate(zip(self.periods, self._cadence)):
            total = sums[i] + close
            mean, m2 = means[i], m2s[i]
            if seen < period:  # Welford's add while the window fills
                delta = close - mean
                mean = mean + delta / seen_after
                m2 = m2 + delta * (close - mean)
            else:
                change = close - leaving[i]
                slid = mean + change / period
                m2 = m2 + change * ((close - slid) + (leaving[i] - mean))
                mean = slid
            peak = maximum(peaks[i], m2)
            if (seen_after % cadence == 0 or m2 < COLLAPSE * peak) and seen_after >= period:
                mean, m2 = (x.item() for x in exact_moments(ring_column(self.closes, row, seen, period)))
                peak = m2
            variance = m2 / period
            deviation = math.sqrt(variance) * self.nbdev if variance >= TA_ZERO else 0.0
            middle = total / period
            lower = middle - deviation
            width = (middle + deviation) - lower
            if seen < period - 1:
                out.append(math.nan)
            else:
                out.append(0.5 if width == 0.0 else (close - lower) / width)
            sums[i], means[i], m2s[i], peaks[i], leaving[i] = total - dropped[i], mean, m2, peak, dropped[i]
        self.sum[:, row], self.mean[:, row], self.m2[:, row] = sums, means, m2s
        self.m2_peak[:, row], self.next_leaving[:, row] = peaks, leaving
        self.bars_seen[row] = seen_after
        return out
