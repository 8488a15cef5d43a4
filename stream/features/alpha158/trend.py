"""ROC, MA, STD, BETA, RSQR and RESI: the close over a window of ``d`` bars.

    ROC{d}  = Ref(close, d) / close
    MA{d}   = Mean(close, d) / close
    STD{d}  = Std(close, d) / close                 sample std (ddof 1)
    BETA{d} = Slope(close, d) / close               OLS slope on 1..d
    RSQR{d} = Rsquare(close, d)                     R² of that regression
    RESI{d} = Resi(close, d) / close                its residual at the last bar

All six come from three running sums of the window about an anchor ``a``:
``s1 = Σ(y - a)``, ``s2 = Σ(y - a)²`` and ``cy = Σ c_j (y_j - a)`` with
the centred positions ``c_j = j - (d + 1) / 2``, so that the slope is
``cy / Σc²`` (``Σc² = d (d² - 1) / 12``). When the window slides, every
value moves one position back: ``cy`` loses ``s1`` and gains the entering
and leaving values at the ends, an O(1) step. A window whose closes are all
equal (a run of equal closes at least ``d`` long) is set exactly: mean the
close, no deviation, slope 0, R² NaN (0 / 0).
"""

from __future__ import annotations

import math

import numpy as np

from stream.features.jit import COLLAPSE, jit, jit_inline
from stream.features.jit_kernel import JitKernel
from stream.features.jit_windows import rebuild_due, rebuild_offsets, ring_bars

OPERATORS = ("ROC", "MA", "STD", "BETA", "RSQR", "RESI")


@jit_inline
def _rebuild(closes, row, n, d, anchor):
    mask = closes.shape[0] - 1
    middle = (d + 1) * 0.5
    s1 = 0.0
    s2 = 0.0
    cy = 0.0
    for position in range(1, d + 1):
        x = closes[(n - d + position) & mask, row] - anchor
        s1 += x
        s2 += x * x
        cy += (position - middle) * x
    return s1, s2, cy


@jit
def _loop(rows, seen, open_, high, low, close, volume, out, out_rows,
          bars_seen, closes, equal_run, anchor, s1, s2, cy, s2_peak, windows, offsets):
    mask = closes.shape[0] - 1
    n_windows = windows.shape[0]
    nan = math.nan
    for i in range(rows.shape[0]):
        r = rows[i]
        n = seen[i]
        c = close[i]
        if n > 0 and closes[(n - 1) & mask, r] == c:
            equal_run[r] += 1
        else:
            equal_run[r] = 1
        closes[n & mask, r] = c
        for w in range(n_windows):
            d = windows[w]
            values = (nan, nan, nan, nan, nan, nan)
            if n + 1 >= d:
                a = c
                if equal_run[r] >= d:  # every close of the window is c
                    t1, t2, ty = 0.0, 0.0, 0.0
                    peak = 0.0
                elif rebuild_due(n + 1, d, offsets[w]):
                    t1, t2, ty = _rebuild(closes, r, n, d, a)
                    peak = t2
                else:
                    a = anchor[w, r]
                    x = c - a
                    o = closes[(n - d) & mask, r] - a
                    t1, t2, ty = s1[w, r], s2[w, r], cy[w, r]
                    ty = ty - t1 + o * ((d + 1) * 0.5) + x * ((d - 1) * 0.5)
                    t1 = t1 + (x - o)
                    t2 = t2 + (x * x - o * o)
                    peak = max(s2_peak[w, r], t2)
                    if t2 - t1 * t1 / d < COLLAPSE * peak:
                        a = c
                        t1, t2, ty = _rebuild(closes, r, n, d, a)
                        peak = t2
                anchor[w, r], s1[w, r], s2[w, r], cy[w, r], s2_peak[w, r] = a, t1, t2, ty, peak
                mean = t1 / d
                m2 = t2 - t1 * mean
                positions = d * (d * d - 1.0) / 12.0
                slope = ty / positions
                roc = closes[(n - d) & mask, r] / c if n >= d else nan
                values = (
                    roc,
                    (a + mean) / c,
                    math.sqrt(max(m2, 0.0) / (d - 1)) / c,
                    slope / c,
                    ty * ty / (positions * m2) if m2 > 0.0 else nan,
                    ((c - a) - (mean + slope * ((d - 1) * 0.5))) / c,
                )
            for k in range(6):
                column = out_rows[k * n_windows + w]
                if column >= 0:
                    out[column, i] = values[k]
        bars_seen[r] = n + 1


class CloseTrend(JitKernel):
    """Outputs ``{op}{d}`` for op in :data:`OPERATORS` (that order), each over
    ``windows``; first value on bar ``d`` (ROC: ``d + 1``)."""

    kind = "alpha158_trend"
    _loop = _loop
    operators = OPERATORS

    def __init__(self, windows=(5, 10, 20, 30, 60), capacity: int = 1):
        self.windows = tuple(sorted(int(d) for d in windows))
        self.output_names = tuple(f"{op}{d}" for op in OPERATORS for d in self.windows)
        self.warmup_bars = tuple(d + 1 if op == "ROC" else d for op in OPERATORS for d in self.windows)
        self._windows = np.asarray(self.windows, dtype=np.int64)
        self._offsets = rebuild_offsets(len(self.windows))
        super().__init__(capacity)

    def params(self):
        return {"windows": list(self.windows)}

    def _declare(self):
        n = (len(self.windows),)
        return {
            "bars_seen": (np.int64, (), 0),
            "closes": (np.float64, (ring_bars(max(self.windows) + 1),), np.nan),  # ROC reads d bars back
            "equal_run": (np.int64, (), 0),  # closes equal to the latest, the latest included
            "anchor": (np.float64, n, 0.0),
            "s1": (np.float64, n, 0.0),
            "s2": (np.float64, n, 0.0),
            "cy": (np.float64, n, 0.0),
            "s2_peak": (np.float64, n, 0.0),
        }

    def _constants(self):
        return self._windows, self._offsets
