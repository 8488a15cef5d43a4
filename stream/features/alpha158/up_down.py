"""Counts and sums of rises and falls over ``d`` bars, of the close and the volume.

    CNTP{d}  = Mean(close > Ref(close, 1), d)
    CNTN{d}  = Mean(close < Ref(close, 1), d)
    CNTD{d}  = CNTP{d} - CNTN{d}
    SUMP{d}  = Sum(Greater(Δclose, 0), d) / (Sum(Abs(Δclose), d) + 1e-12)
    SUMN{d}  = Sum(Greater(-Δclose, 0), d) / (Sum(Abs(Δclose), d) + 1e-12)
    SUMD{d}  = (gains - losses) / (Sum(Abs(Δclose), d) + 1e-12)
    VSUMP{d}, VSUMN{d}, VSUMD{d}: the same three of the volume

with ``Δx = x - Ref(x, 1)``; ``Σ|Δ|`` is gains + losses. Counts are
integers, so the CNT features are exact. The sums of gains and of losses
are running sums of non-negative terms, rebuilt every
:data:`~..jit_windows.CADENCE` bars, when they fall below :data:`~..jit.COLLAPSE` of their peak, and set to an
exact 0 when the window holds no rise (no fall): a residue of rounding over
Qlib's 1e-12 would otherwise give a flat window a value.
"""

from __future__ import annotations

import math

import numpy as np

from stream.features.jit import COLLAPSE, jit, jit_inline
from stream.features.jit_kernel import JitKernel
from stream.features.jit_windows import rebuild_due, rebuild_offsets, ring_bars

CLOSE_OPERATORS = ("CNTP", "CNTN", "CNTD", "SUMP", "SUMN", "SUMD")
VOLUME_OPERATORS = ("VSUMP", "VSUMN", "VSUMD")
OPERATORS = CLOSE_OPERATORS + VOLUME_OPERATORS


@jit_inline
def _rebuild(series, row, n, d):
    mask = series.shape[0] - 1
    ups = 0
    downs = 0
    gains = 0.0
    losses = 0.0
    for j in range(n - d + 1, n + 1):
        change = series[j & mask, row] - series[(j - 1) & mask, row]
        if change > 0.0:
            ups += 1
            gains += change
        elif change < 0.0:
            downs += 1
            losses -= change
    return ups, downs, gains, losses


@jit_inline
def _step(series, row, n, d, offset, counts, sums, peaks, at):
    """Advance the window of changes ``at`` of one series to bar n (n >= d)."""
    mask = series.shape[0] - 1
    if rebuild_due(n, d, offset):
        counts[at, row], counts[at + 1, row], sums[at, row], sums[at + 1, row] = _rebuild(series, row, n, d)
        peaks[at, row], peaks[at + 1, row] = sums[at, row], sums[at + 1, row]
        return
    entering = series[n & mask, row] - series[(n - 1) & mask, row]
    leaving = series[(n - d) & mask, row] - series[(n - d - 1) & mask, row]
    # Selects rather than branches: whether a change is a rise or a fall is
    # a coin toss, which a branch would mispredict half the time. A NaN
    # change (bad input) is neither.
    ups = counts[at, row] + (entering > 0.0) - (leaving > 0.0)
    downs = counts[at + 1, row] + (entering < 0.0) - (leaving < 0.0)
    gains = sums[at, row] + ((entering if entering > 0.0 else 0.0) - (leaving if leaving > 0.0 else 0.0))
    losses = sums[at + 1, row] + ((-entering if entering < 0.0 else 0.0) - (-leaving if leaving < 0.0 else 0.0))
    gain_peak = max(peaks[at, row], gains)
    loss_peak = max(peaks[at + 1, row], losses)
    gains = gains if ups > 0 else 0.0  # exact, and as good as rebuilt
    gain_peak = gain_peak if ups > 0 else 0.0
    losses = losses if downs > 0 else 0.0
    loss_peak = loss_peak if downs > 0 else 0.0
    if (ups > 0 and gains < COLLAPSE * gain_peak) or (downs > 0 and losses < COLLAPSE * loss_peak):
        ups, downs, gains, losses = _rebuild(series, row, n, d)
        gain_peak, loss_peak = gains, losses
    counts[at, row], counts[at + 1, row], sums[at, row], sums[at + 1, row] = ups, downs, gains, losses
    peaks[at, row], peaks[at + 1, row] = gain_peak, loss_peak


@jit
def _loop(rows, seen, open_, high, low, close, volume, out, out_rows,
          bars_seen, closes, volumes, counts, sums, peaks, windows, offsets):
    mask = closes.shape[0] - 1
    n_windows = windows.shape[0]
    nan = math.nan
    for i in range(rows.shape[0]):
        closes[seen[i] & mask, rows[i]] = close[i]
        volumes[seen[i] & mask, rows[i]] = volume[i]
    for w in range(n_windows):  # window by window: each pass walks a few arrays row after row
        d = windows[w]
        at = 4 * w  # close: at, at + 1; volume: at + 2, at + 3
        for i in range(rows.shape[0]):
            r = rows[i]
            n = seen[i]
            values = (nan, nan, nan, nan, nan, nan, nan, nan, nan)
            if n >= d:
                _step(closes, r, n, d, offsets[w], counts, sums, peaks, at)
                _step(volumes, r, n, d, offsets[w], counts, sums, peaks, at + 2)
                up = counts[at, r] / d
                down = counts[at + 1, r] / d
                gains, losses = sums[at, r], sums[at + 1, r]
                total = gains + losses + 1e-12
                volume_gains, volume_losses = sums[at + 2, r], sums[at + 3, r]
                volume_total = volume_gains + volume_losses + 1e-12
                values = (
                    up,
                    down,
                    up - down,
                    gains / total,
                    losses / total,
                    (gains - losses) / total,
                    volume_gains / volume_total,
                    volume_losses / volume_total,
                    (volume_gains - volume_losses) / volume_total,
                )
            for k in range(9):
                column = out_rows[k * n_windows + w]
                if column >= 0:
                    out[column, i] = values[k]
    for i in range(rows.shape[0]):
        bars_seen[rows[i]] = seen[i] + 1


class UpDown(JitKernel):
    """Outputs ``{op}{d}`` for op in :data:`OPERATORS` (that order), each over
    ``windows``; first value on bar ``d + 1``."""

    kind = "alpha158_up_down"
    _loop = _loop
    operators = OPERATORS

    def __init__(self, windows=(5, 10, 20, 30, 60), capacity: int = 1):
        self.windows = tuple(sorted(int(d) for d in windows))
        self.output_names = tuple(f"{op}{d}" for op in OPERATORS for d in self.windows)
        self.warmup_bars = tuple(d + 1 for _ in OPERATORS for d in self.windows)
        self._windows = np.asarray(self.windows, dtype=np.int64)
        self._offsets = rebuild_offsets(len(self.windows))
        super().__init__(capacity)

    def params(self):
        return {"windows": list(self.windows)}

    def _declare(self):
        ring = (ring_bars(max(self.windows) + 2),)  # the leaving change needs the value d + 1 bars back
        per_window = (4 * len(self.windows),)  # rises and falls of the close, then of the volume
        return {
            "bars_seen": (np.int64, (), 0),
            "closes": (np.float64, ring, np.nan),
            "volumes": (np.float64, ring, np.nan),
            "counts": (np.int64, per_window, 0),
            "sums": (np.float64, per_window, 0.0),
            "peaks": (np.float64, per_window, 0.0),
        }

    def _constants(self):
        return self._windows, self._offsets
