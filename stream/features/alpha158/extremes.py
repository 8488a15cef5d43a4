"""MAX, MIN, RSV, IMAX, IMIN and IMXD: highs and lows over ``d`` bars.

    MAX{d}  = Max(high, d) / close
    MIN{d}  = Min(low, d) / close
    RSV{d}  = (close - Min(low, d)) / (Max(high, d) - Min(low, d) + 1e-12)
    IMAX{d} = IdxMax(high, d) / d       1-based position in the window, oldest first
    IMIN{d} = IdxMin(low, d) / d
    IMXD{d} = (IdxMax(high, d) - IdxMin(low, d)) / d

Each window keeps a monotonic deque of bar numbers per series (the
"ascending minima" algorithm): a new high removes from the back every bar
whose high is lower, so the front is the window's maximum; amortised O(1)
per bar. Equal highs stay, so the front is the oldest of equal maxima, as
``argmax`` takes the first (likewise for lows). Positions are integers, so
IMAX, IMIN and IMXD are exact.
"""

from __future__ import annotations

import math

import numpy as np

from stream.features.jit import jit, jit_inline
from stream.features.jit_kernel import JitKernel
from stream.features.jit_windows import ring_bars

OPERATORS = ("MAX", "MIN", "RSV", "IMAX", "IMIN", "IMXD")


@jit_inline
def deque_push(queue, start, slots, head, length, row, series, bar, value, larger, window):
    """Add bar number ``bar`` (its value already in ``series``, a ring) to
    the deque of a ``window`` in ``queue[start:start + slots, row]`` (a ring
    of ``slots`` >= ``window`` slots, a power of two; ``head`` its front,
    ``length`` its count) after dropping the front if it left the window;
    returns (head, length). ``larger``: keep maxima (else minima)."""
    mask = series.shape[0] - 1
    slot_mask = slots - 1
    if length > 0 and queue[start + head, row] <= bar - window:
        head = (head + 1) & slot_mask
        length -= 1
    while length > 0:
        back = queue[start + ((head + length - 1) & slot_mask), row]
        kept = series[back & mask, row]
        if (kept < value) if larger else (kept > value):
            length -= 1
        else:
            break
    queue[start + ((head + length) & slot_mask), row] = bar
    return head, length + 1


@jit
def _loop(rows, seen, open_, high, low, close, volume, out, out_rows,
          bars_seen, highs, lows, max_queue, max_head, max_length, min_queue, min_head, min_length,
          windows, starts, slots):
    mask = highs.shape[0] - 1
    n_windows = windows.shape[0]
    nan = math.nan
    for i in range(rows.shape[0]):
        highs[seen[i] & mask, rows[i]] = high[i]
        lows[seen[i] & mask, rows[i]] = low[i]
    # Window by window, so that each pass walks a few arrays row after row.
    for w in range(n_windows):
        d = windows[w]
        start = starts[w]
        columns = (out_rows[w], out_rows[n_windows + w], out_rows[2 * n_windows + w],
                   out_rows[3 * n_windows + w], out_rows[4 * n_windows + w], out_rows[5 * n_windows + w])
        for i in range(rows.shape[0]):
            r = rows[i]
            n = seen[i]
            c = close[i]
            max_head[w, r], max_length[w, r] = deque_push(
                max_queue, start, slots[w], max_head[w, r], max_length[w, r], r, highs, n, high[i], True, d)
            min_head[w, r], min_length[w, r] = deque_push(
                min_queue, start, slots[w], min_head[w, r], min_length[w, r], r, lows, n, low[i], False, d)
            values = (nan, nan, nan, nan, nan, nan)
            if n + 1 >= d:
                top_bar = max_queue[start + max_head[w, r], r]
                bottom_bar = min_queue[start + min_head[w, r], r]
                top = highs[top_bar & mask, r]
                bottom = lows[bottom_bar & mask, r]
                top_position = top_bar - (n - d)  # 1 .. d, oldest first
                bottom_position = bottom_bar - (n - d)
                values = (
                    top / c,
                    bottom / c,
                    (c - bottom) / (top - bottom + 1e-12),
                    top_position / d,
                    bottom_position / d,
                    (top_position - bottom_position) / d,
                )
            for k in range(6):
                if columns[k] >= 0:
                    out[columns[k], i] = values[k]
    for i in range(rows.shape[0]):
        bars_seen[rows[i]] = seen[i] + 1


class Extremes(JitKernel):
    """Outputs ``{op}{d}`` for op in :data:`OPERATORS` (that order), each over
    ``windows``; first value on bar ``d``."""

    kind = "alpha158_extremes"
    _loop = _loop
    operators = OPERATORS

    def __init__(self, windows=(5, 10, 20, 30, 60), capacity: int = 1):
        self.windows = tuple(sorted(int(d) for d in windows))
        self.output_names = tuple(f"{op}{d}" for op in OPERATORS for d in self.windows)
        self.warmup_bars = tuple(d for _ in OPERATORS for d in self.windows)
        self._windows = np.asarray(self.windows, dtype=np.int64)
        self._slots = np.asarray([ring_bars(d) for d in self.windows], dtype=np.int64)
        self._starts = np.cumsum([0, *self._slots[:-1]]).astype(np.int64)
        super().__init__(capacity)

    def params(self):
        return {"windows": list(self.windows)}

    def _declare(self):
        n = (len(self.windows),)
        slots = (int(self._slots.sum()),)  # window w's deque in rows starts[w] .. + slots[w] - 1
        ring = (ring_bars(max(self.windows)),)
        return {
            "bars_seen": (np.int64, (), 0),
            "highs": (np.float64, ring, np.nan),
            "lows": (np.float64, ring, np.nan),
            "max_queue": (np.int64, slots, 0),
            "max_head": (np.int64, n, 0),
            "max_length": (np.int64, n, 0),
            "min_queue": (np.int64, slots, 0),
            "min_head": (np.int64, n, 0),
            "min_length": (np.int64, n, 0),
        }

    def _constants(self):
        return self._windows, self._starts, self._slots
