"""VMA, VSTD and WVMA: the volume over ``d`` bars.

    VMA{d}  = Mean(volume, d) / (volume + 1e-12)
    VSTD{d} = Std(volume, d) / (volume + 1e-12)                      ddof 1
    WVMA{d} = Std(|close / Ref(close, 1) - 1| * volume, d)
              / (Mean(|close / Ref(close, 1) - 1| * volume, d) + 1e-12)

Mean and deviation come from anchored sums (see :mod:`..jit_windows`); a
window whose values are all equal is set exactly (no deviation).
"""

from __future__ import annotations

import math

import numpy as np

from stream.features.jit import COLLAPSE, jit, jit_inline
from stream.features.jit_kernel import JitKernel
from stream.features.jit_windows import rebuild_due, rebuild_offsets, ring_bars, window_sums

OPERATORS = ("VMA", "VSTD", "WVMA")


@jit_inline
def moments_step(series, runs, row, n, d, offset, first_bar, anchor, s1, s2, peak, at):
    """Advance the anchored sums ``at`` of one series to bar n (its window,
    whose first value is that of bar ``first_bar``, being full); returns the
    mean and the sum of squared deviations."""
    mask = series.shape[0] - 1
    x = series[n & mask, row]
    if runs[row] >= d:  # every value of the window is x
        anchor[at, row], s1[at, row], s2[at, row], peak[at, row] = x, 0.0, 0.0, 0.0
        return x, 0.0
    if rebuild_due(n - first_bar + 1, d, offset):
        t1, t2 = window_sums(series, row, n, d, x)
        anchor[at, row], s1[at, row], s2[at, row], peak[at, row] = x, t1, t2, t2
    else:
        a = anchor[at, row]
        entering = x - a
        leaving = series[(n - d) & mask, row] - a
        t1 = s1[at, row] + (entering - leaving)
        t2 = s2[at, row] + (entering * entering - leaving * leaving)
        top = max(peak[at, row], t2)
        if t2 - t1 * t1 / d < COLLAPSE * top:
            t1, t2 = window_sums(series, row, n, d, x)
            a = x
            top = t2
        anchor[at, row], s1[at, row], s2[at, row], peak[at, row] = a, t1, t2, top
    t1 = s1[at, row]
    return anchor[at, row] + t1 / d, s2[at, row] - t1 * t1 / d


@jit
def _loop(rows, seen, open_, high, low, close, volume, out, out_rows,
          bars_seen, prev_close, volumes, weighted, volume_run, weighted_run, anchor, s1, s2, peak,
          windows, offsets):
    mask = volumes.shape[0] - 1
    n_windows = windows.shape[0]
    nan = math.nan
    for i in range(rows.shape[0]):
        r = rows[i]
        n = seen[i]
        v = volume[i]
        moved = abs(close[i] / prev_close[r] - 1.0) * v  # NaN on a symbol's first bar
        previous = (n - 1) & mask
        volume_run[r] = volume_run[r] + 1 if n > 0 and volumes[previous, r] == v else 1
        weighted_run[r] = weighted_run[r] + 1 if n > 0 and weighted[previous, r] == moved else 1
        volumes[n & mask, r] = v
        weighted[n & mask, r] = moved
        prev_close[r] = close[i]
    for w in range(n_windows):  # window by window: each pass walks a few arrays row after row
        d = windows[w]
        columns = (out_rows[w], out_rows[n_windows + w], out_rows[2 * n_windows + w])
        for i in range(rows.shape[0]):
            r = rows[i]
            n = seen[i]
            v = volume[i]
            vma = vstd = wvma = nan
            if n + 1 >= d:
                mean, m2 = moments_step(volumes, volume_run, r, n, d, offsets[w], 0, anchor, s1, s2, peak, 2 * w)
                vma = mean / (v + 1e-12)
                vstd = math.sqrt(max(m2, 0.0) / (d - 1)) / (v + 1e-12)
            if n >= d:
                mean, m2 = moments_step(weighted, weighted_run, r, n, d, offsets[w], 1, anchor, s1, s2, peak, 2 * w + 1)
                wvma = math.sqrt(max(m2, 0.0) / (d - 1)) / (mean + 1e-12)
            values = (vma, vstd, wvma)
            for k in range(3):
                if columns[k] >= 0:
                    out[columns[k], i] = values[k]
    for i in range(rows.shape[0]):
        bars_seen[rows[i]] = seen[i] + 1


class VolumeStats(JitKernel):
    """Outputs ``{op}{d}`` for op in :data:`OPERATORS` (that order), each over
    ``windows``; first value on bar ``d`` (WVMA: ``d + 1``)."""

    kind = "alpha158_volume"
    _loop = _loop
    operators = OPERATORS

    def __init__(self, windows=(5, 10, 20, 30, 60), capacity: int = 1):
        self.windows = tuple(sorted(int(d) for d in windows))
        self.output_names = tuple(f"{op}{d}" for op in OPERATORS for d in self.windows)
        self.warmup_bars = tuple(d + (op == "WVMA") for op in OPERATORS for d in self.windows)
        self._windows = np.asarray(self.windows, dtype=np.int64)
        self._offsets = rebuild_offsets(len(self.windows))
        super().__init__(capacity)

    def params(self):
        return {"windows": list(self.windows)}

    def _declare(self):
        ring = (ring_bars(max(self.windows) + 1),)
        per_window = (2 * len(self.windows),)  # window w: volume 2w, weighted changes 2w + 1
        return {
            "bars_seen": (np.int64, (), 0),
            "prev_close": (np.float64, (), np.nan),
            "volumes": (np.float64, ring, np.nan),
            "weighted": (np.float64, ring, np.nan),
            "volume_run": (np.int64, (), 0),
            "weighted_run": (np.int64, (), 0),
            "anchor": (np.float64, per_window, 0.0),
            "s1": (np.float64, per_window, 0.0),
            "s2": (np.float64, per_window, 0.0),
            "peak": (np.float64, per_window, 0.0),
        }

    def _constants(self):
        return self._windows, self._offsets
