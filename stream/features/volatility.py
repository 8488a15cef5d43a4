"""Rolling standard deviation (ddof = 1) of one-bar returns: ``vol_p``."""

from __future__ import annotations

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Kernel
from stream.features.rows import Rows
from stream.features.window import COLLAPSE, exact_moments, last_values, recompute_cadence, slide_moments


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
        self._period = np.asarray(self.periods, dtype=np.int64)[:, None]
        self._period_f = self._period.astype(np.float64)
        self._ddof_scale = self._period_f - 1.0
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

    def _update(self, rows: Rows, bars: Bars, out: np.ndarray) -> None:
        sel = rows.sel
        close = bars.close
        seen = self.bars_seen[sel]  # also the number of returns once this bar's is in
        ring = self._ring_bars
        flat = self.returns.reshape(-1)
        ret = close / self.prev_close[sel] - 1.0
        mean = self.mean[:, sel]
        m2 = self.m2[:, sel]
        back = seen[None, :] - self._period  # the return leaving the window
        leaving = flat.take((back % ring) * self._capacity + rows.index)
        warming = bool(seen.min() <= self._period.max())
        if warming:
            new_mean, new_m2 = slide_moments(
                mean, m2, ret, leaving, self._period_f, count=seen.astype(np.float64), filling=back <= 0
            )
            first = seen == 0  # no return yet
            new_mean[:, first] = 0.0
            new_m2[:, first] = 0.0
        else:
            new_mean, new_m2 = slide_moments(mean, m2, ret, leaving, self._period_f)
        m2_peak = np.maximum(self.m2_peak[:, sel], new_m2)
        inexact = new_m2 < COLLAPSE * m2_peak
        flat[(seen % ring) * self._capacity + rows.index] = ret
        for i, (period, cadence) in enumerate(zip(self.periods, self._cadence)):
            rebuild = ((seen % cadence == 0) | inexact[i]) & (seen >= period)
            if rebuild.any():
                window = last_values(self.returns, rows.index[rebuild], seen[rebuild] + 1, period)
                new_mean[i, rebuild], new_m2[i, rebuild] = exact_moments(window)
                m2_peak[i, rebuild] = new_m2[i, rebuild]
        np.maximum(new_m2, 0.0, out=out)
        out /= self._ddof_scale
        np.sqrt(out, out=out)
        if warming:
            out[back < 0] = np.nan
        self.mean[:, sel] = new_mean
        self.m2[:, sel] = new_m2
        self.m2_peak[:, sel] = m2_peak
        self.prev_close[sel] = close
        self.bars_seen[sel] = seen + 1
