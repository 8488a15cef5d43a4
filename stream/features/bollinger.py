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

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Kernel
from stream.features.rows import Rows
from stream.features.window import COLLAPSE, exact_moments, last_values, recompute_cadence, slide_moments

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
        self._period = np.asarray(self.periods, dtype=np.int64)[:, None]
        self._period_f = self._period.astype(np.float64)
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

    def _update(self, rows: Rows, bars: Bars, out: np.ndarray) -> None:
        sel = rows.sel
        close = bars.close
        seen = self.bars_seen[sel]
        ring = self._ring_bars
        flat = self.closes.reshape(-1)
        base = rows.index
        back = seen[None, :] - self._period  # bar leaving the Welford window now
        # TA-Lib's SMA drops the close p-1 bars back right after using it; the
        # same close leaves the Welford window on the next bar.
        dropped = flat.take(((back + 1) % ring) * self._capacity + base)
        leaving = self.next_leaving[:, sel]
        total = self.sum[:, sel] + close
        warming = bool(seen.min() < self._period.max())
        if warming:
            dropped[back < -1] = 0.0
            mean, m2 = slide_moments(
                self.mean[:, sel], self.m2[:, sel], close, leaving, self._period_f,
                count=(seen + 1).astype(np.float64), filling=back < 0,
            )
        else:
            mean, m2 = slide_moments(self.mean[:, sel], self.m2[:, sel], close, leaving, self._period_f)
        m2_peak = np.maximum(self.m2_peak[:, sel], m2)
        collapsed = m2 < COLLAPSE * m2_peak
        flat[(seen % ring) * self._capacity + base] = close
        seen_after = seen + 1
        for i, (period, cadence) in enumerate(zip(self.periods, self._cadence)):
            rebuild = ((seen_after % cadence == 0) | collapsed[i]) & (seen_after >= period)
            if rebuild.any():
                window = last_values(self.closes, base[rebuild], seen_after[rebuild], period)
                mean[i, rebuild], m2[i, rebuild] = exact_moments(window)
                m2_peak[i, rebuild] = m2[i, rebuild]
        middle = total / self._period_f
        variance = m2 / self._period_f
        deviation = np.sqrt(variance)
        deviation[~(variance >= TA_ZERO)] = 0.0
        deviation *= self.nbdev
        upper = middle + deviation
        lower = middle - deviation
        width = upper - lower
        np.divide(close - lower, width, out=out)
        out[width == 0.0] = 0.5
        if warming:
            out[back < -1] = np.nan
        self.sum[:, sel] = total - dropped
        self.mean[:, sel] = mean
        self.m2[:, sel] = m2
        self.m2_peak[:, sel] = m2_peak
        self.next_leaving[:, sel] = dropped
        self.bars_seen[sel] = seen_after
