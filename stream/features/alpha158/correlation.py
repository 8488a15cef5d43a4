"""CORR and CORD: price-volume correlations over ``d`` bars.

    CORR{d} = Corr(close, Log(volume + 1), d)
    CORD{d} = Corr(close / Ref(close, 1), Log(volume / Ref(volume, 1) + 1), d)

Each pair's window keeps anchored sums of x, y, x², y² and xy (see
:mod:`..jit_windows`); Pearson's r is the co-moment over the root of the
product of the second moments. The correlation is NaN while either series is
constant over the window (an exact test on runs of equal values) and while
the window holds a non-finite pair: after a bar of zero volume the volume
ratio is infinite (NaN after two), which would spoil the sums, so such pairs
are counted instead of summed and the sums are rebuilt once the window is
clear of them.
"""

from __future__ import annotations

import math

import numpy as np

from stream.features.jit import COLLAPSE, jit, jit_inline
from stream.features.jit_kernel import JitKernel
from stream.features.jit_windows import rebuild_due, rebuild_offsets, ring_bars

OPERATORS = ("CORR", "CORD")
SUMS = 5  # x, y, xx, yy, xy


@jit_inline
def _finite(x, y):
    return math.isfinite(x) and math.isfinite(y)


@jit_inline
def _rebuild(xs, ys, row, n, d, sums, anchors, at):
    """Sums over bars n-d+1 .. n about anchors taken from the newest finite
    pair; returns the number of non-finite pairs."""
    mask = xs.shape[0] - 1
    ax = 0.0
    ay = 0.0
    for j in range(n, n - d, -1):
        if _finite(xs[j & mask, row], ys[j & mask, row]):
            ax = xs[j & mask, row]
            ay = ys[j & mask, row]
            break
    for k in range(SUMS):
        sums[at + k, row] = 0.0
    bad = 0
    for j in range(n - d + 1, n + 1):
        x = xs[j & mask, row]
        y = ys[j & mask, row]
        if not _finite(x, y):
            bad += 1
            continue
        x -= ax
        y -= ay
        sums[at, row] += x
        sums[at + 1, row] += y
        sums[at + 2, row] += x * x
        sums[at + 3, row] += y * y
        sums[at + 4, row] += x * y
    anchors[2 * at // SUMS, row] = ax
    anchors[2 * at // SUMS + 1, row] = ay
    return bad


@jit_inline
def _pair_step(xs, ys, runs, row, n, d, offset, first_bar, sums, peaks, anchors, bad, at):
    """Advance one pair's window to bar n; its correlation (NaN before the
    window, the first pair being that of bar ``first_bar``, is full)."""
    mask = xs.shape[0] - 1
    if n - d + 1 < first_bar:
        return math.nan
    slot = at // SUMS
    if rebuild_due(n - first_bar + 1, d, offset):
        bad[slot, row] = _rebuild(xs, ys, row, n, d, sums, anchors, at)
        peaks[2 * slot, row] = sums[at + 2, row]
        peaks[2 * slot + 1, row] = sums[at + 3, row]
    else:
        # The window's sums in locals, stored once: the loop keeps them in
        # registers rather than reloading each after every store.
        ax, ay = anchors[2 * slot, row], anchors[2 * slot + 1, row]
        sx, sy, sxx, syy, sxy = sums[at, row], sums[at + 1, row], sums[at + 2, row], sums[at + 3, row], sums[at + 4, row]
        was_bad = bad[slot, row]
        now_bad = was_bad
        x, y = xs[n & mask, row], ys[n & mask, row]
        if _finite(x, y):
            x -= ax
            y -= ay
            sx += x
            sy += y
            sxx += x * x
            syy += y * y
            sxy += x * y
        else:
            now_bad += 1
        x, y = xs[(n - d) & mask, row], ys[(n - d) & mask, row]
        if _finite(x, y):
            x -= ax
            y -= ay
            sx -= x
            sy -= y
            sxx -= x * x
            syy -= y * y
            sxy -= x * y
        else:
            now_bad -= 1
        sums[at, row], sums[at + 1, row], sums[at + 2, row], sums[at + 3, row], sums[at + 4, row] = sx, sy, sxx, syy, sxy
        bad[slot, row] = now_bad
        if now_bad == 0:
            peak_x = max(peaks[2 * slot, row], sxx)
            peak_y = max(peaks[2 * slot + 1, row], syy)
            per_value = 1.0 / d
            if was_bad > 0 or sxx - sx * sx * per_value < COLLAPSE * peak_x or syy - sy * sy * per_value < COLLAPSE * peak_y:
                bad[slot, row] = _rebuild(xs, ys, row, n, d, sums, anchors, at)
                peak_x, peak_y = sums[at + 2, row], sums[at + 3, row]
            peaks[2 * slot, row] = peak_x
            peaks[2 * slot + 1, row] = peak_y
    if bad[slot, row] > 0 or runs[0, row] >= d or runs[1, row] >= d:
        return math.nan
    # Multiplying by 1 / d where the definition divides: a division costs
    # several multiplications, and r does not depend on how the mean rounds.
    per_value = 1.0 / d
    sx, sy = sums[at, row], sums[at + 1, row]
    mxx = sums[at + 2, row] - sx * sx * per_value
    myy = sums[at + 3, row] - sy * sy * per_value
    mxy = sums[at + 4, row] - sx * sy * per_value
    return mxy / math.sqrt(mxx * myy)


@jit_inline
def _run(runs, which, row, n, previous, value):
    if n > 0 and previous == value:
        runs[which, row] += 1
    else:
        runs[which, row] = 1


@jit
def _loop(rows, seen, open_, high, low, close, volume, out, out_rows,
          bars_seen, prev_close, prev_volume, level_x, level_y, change_x, change_y, level_runs, change_runs,
          sums, peaks, anchors, bad, windows, offsets):
    mask = level_x.shape[0] - 1
    n_windows = windows.shape[0]
    for i in range(rows.shape[0]):
        r = rows[i]
        n = seen[i]
        slot = n & mask
        lx = close[i]
        ly = math.log(volume[i] + 1.0)
        cx = close[i] / prev_close[r]  # NaN on a symbol's first bar
        cy = math.log(volume[i] / prev_volume[r] + 1.0)
        previous = (n - 1) & mask
        _run(level_runs, 0, r, n, level_x[previous, r], lx)
        _run(level_runs, 1, r, n, level_y[previous, r], ly)
        _run(change_runs, 0, r, n, change_x[previous, r], cx)
        _run(change_runs, 1, r, n, change_y[previous, r], cy)
        level_x[slot, r], level_y[slot, r], change_x[slot, r], change_y[slot, r] = lx, ly, cx, cy
        prev_close[r] = close[i]
        prev_volume[r] = volume[i]
    for w in range(n_windows):  # window by window: each pass walks a few arrays row after row
        d = windows[w]
        level_column = out_rows[w]
        change_column = out_rows[n_windows + w]
        for i in range(rows.shape[0]):
            r = rows[i]
            n = seen[i]
            level = _pair_step(level_x, level_y, level_runs, r, n, d, offsets[w], 0,
                               sums, peaks, anchors, bad, 2 * w * SUMS)
            change = _pair_step(change_x, change_y, change_runs, r, n, d, offsets[w], 1,
                                sums, peaks, anchors, bad, (2 * w + 1) * SUMS)
            if level_column >= 0:
                out[level_column, i] = level
            if change_column >= 0:
                out[change_column, i] = change
    for i in range(rows.shape[0]):
        bars_seen[rows[i]] = seen[i] + 1


class Correlations(JitKernel):
    """Outputs ``CORR{d}`` then ``CORD{d}`` over ``windows``; first value on
    bar ``d`` (CORD: ``d + 1``)."""

    kind = "alpha158_correlation"
    _loop = _loop
    operators = OPERATORS

    def __init__(self, windows=(5, 10, 20, 30, 60), capacity: int = 1):
        self.windows = tuple(sorted(int(d) for d in windows))
        self.output_names = tuple(f"{op}{d}" for op in OPERATORS for d in self.windows)
        self.warmup_bars = tuple(d + (op == "CORD") for op in OPERATORS for d in self.windows)
        self._windows = np.asarray(self.windows, dtype=np.int64)
        self._offsets = rebuild_offsets(len(self.windows))
        super().__init__(capacity)

    def params(self):
        return {"windows": list(self.windows)}

    def _declare(self):
        pairs = 2 * len(self.windows)  # window w: pair 2w (levels), 2w + 1 (changes)
        ring = (ring_bars(max(self.windows) + 1),)  # the leaving pair, d bars back, is still there
        return {
            "bars_seen": (np.int64, (), 0),
            "prev_close": (np.float64, (), np.nan),
            "prev_volume": (np.float64, (), np.nan),
            "level_x": (np.float64, ring, np.nan),
            "level_y": (np.float64, ring, np.nan),
            "change_x": (np.float64, ring, np.nan),
            "change_y": (np.float64, ring, np.nan),
            "level_runs": (np.int64, (2,), 0),  # equal values in a row, of x and of y
            "change_runs": (np.int64, (2,), 0),
            "sums": (np.float64, (pairs * SUMS,), 0.0),
            "peaks": (np.float64, (2 * pairs,), 0.0),  # largest x² and y² sums since the rebuild
            "anchors": (np.float64, (2 * pairs,), 0.0),
            "bad": (np.int64, (pairs,), 0),  # non-finite pairs in the window
        }

    def _constants(self):
        return self._windows, self._offsets
