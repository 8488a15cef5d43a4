"""MAX, MIN, RSV, IMAX, IMIN and IMXD: highs and lows over ``d`` bars.

    MAX{d}  = Max(high, d) / close
    MIN{d}  = Min(low, d) / close
    RSV{d}  = (close - Min(low, d)) / (Max(high, d) - Min(low, d) + 1e-12)
    IMAX{d} = IdxMax(high, d) / d       1-based position in the window, oldest first
    IMIN{d} = IdxMin(low, d) / d
    IMXD{d} = (IdxMax(high, d) - IdxMin(low, d)) / d

Each window splits a symbol's bars into blocks of ``d`` (van Herk and
Gil-Werman): a window ending at bar n is the tail of the previous block and
the head of the current one, so its maximum is the larger of the previous
block's suffix maximum at the window's first bar and the current block's
running (prefix) maximum. The suffix maxima of a block are computed once,
when it completes, in one backward pass of ``d`` steps: amortised O(1) per
bar, with no data-dependent memory access (a monotonic deque would give the
same values, but each row's deque head sits at its own slot, which costs a
cache miss per row and bar across thousands of symbols). The first of equal
maxima wins throughout (prefix: only a strictly larger value replaces;
suffix: an equal earlier value does; across the two: the earlier block's),
as ``argmax`` takes the first; likewise for lows. Positions are integers, so
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
def block_extreme(series, row, n, d, phase, prefix, prefix_at, suffix, suffix_at, w, start, slots, larger):
    """The extreme of ``series`` (a ring, bar n's value written) over bars
    n-d+1 .. n and its bar number, for a row whose bar n sits at ``phase``
    (0 .. d-1) in its block; keeps the prefix of window ``w`` (``prefix[w,
    row]``) and, when the block completes, its suffixes (in
    ``suffix[start:start + slots, row]``, slot of bar j: ``j & (slots - 1)``).
    ``larger``: maxima, else minima. NaN and -1 before bar d - 1."""
    mask = series.shape[0] - 1
    slot_mask = slots - 1
    x = series[n & mask, row]
    if phase == 0 or ((x > prefix[w, row]) if larger else (x < prefix[w, row])):
        prefix[w, row] = x
        prefix_at[w, row] = n
    if phase == d - 1:  # the window is this block; store its suffixes for the windows to come
        best = x
        best_at = n
        for j in range(n, n - d, -1):
            v = series[j & mask, row]
            if (v >= best) if larger else (v <= best):
                best = v
                best_at = j
            suffix[start + (j & slot_mask), row] = best
            suffix_at[start + (j & slot_mask), row] = best_at
        return prefix[w, row], prefix_at[w, row]
    if n + 1 < d:
        return math.nan, -1
    first = start + ((n - d + 1) & slot_mask)
    earlier = suffix[first, row]
    if (earlier >= prefix[w, row]) if larger else (earlier <= prefix[w, row]):
        return earlier, suffix_at[first, row]
    return prefix[w, row], prefix_at[w, row]


@jit
def _loop(rows, seen, open_, high, low, close, volume, out, out_rows,
          bars_seen, highs, lows, phase, top, top_at, top_suffix, top_suffix_at,
          bottom, bottom_at, bottom_suffix, bottom_suffix_at, windows, starts, slots):
    mask = highs.shape[0] - 1
    n_windows = windows.shape[0]
    nan = math.nan
    for i in range(rows.shape[0]):
        highs[seen[i] & mask, rows[i]] = high[i]
        lows[seen[i] & mask, rows[i]] = low[i]
    for w in range(n_windows):  # window by window: each pass walks a few arrays row after row
        d = windows[w]
        columns = (out_rows[w], out_rows[n_windows + w], out_rows[2 * n_windows + w],
                   out_rows[3 * n_windows + w], out_rows[4 * n_windows + w], out_rows[5 * n_windows + w])
        for i in range(rows.shape[0]):
            r = rows[i]
            n = seen[i]
            c = close[i]
            p = phase[w, r]
            highest, highest_at = block_extreme(highs, r, n, d, p, top, top_at, top_suffix, top_suffix_at,
                                                w, starts[w], slots[w], True)
            lowest, lowest_at = block_extreme(lows, r, n, d, p, bottom, bottom_at, bottom_suffix, bottom_suffix_at,
                                              w, starts[w], slots[w], False)
            phase[w, r] = p + 1 if p + 1 < d else 0
            values = (nan, nan, nan, nan, nan, nan)
            if n + 1 >= d:
                top_position = highest_at - (n - d)  # 1 .. d, oldest first
                bottom_position = lowest_at - (n - d)
                values = (
                    highest / c,
                    lowest / c,
                    (c - lowest) / (highest - lowest + 1e-12),
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
        slots = (int(self._slots.sum()),)  # window w's suffixes in rows starts[w] .. + slots[w] - 1
        ring = (ring_bars(max(self.windows)),)
        return {
            "bars_seen": (np.int64, (), 0),
            "highs": (np.float64, ring, np.nan),
            "lows": (np.float64, ring, np.nan),
            "phase": (np.int64, n, 0),  # the next bar's place in its block of d
            "top": (np.float64, n, np.nan),  # the current block's running maximum so far
            "top_at": (np.int64, n, 0),
            "top_suffix": (np.float64, slots, np.nan),  # the last complete block's suffix maxima
            "top_suffix_at": (np.int64, slots, 0),
            "bottom": (np.float64, n, np.nan),
            "bottom_at": (np.int64, n, 0),
            "bottom_suffix": (np.float64, slots, np.nan),
            "bottom_suffix_at": (np.int64, slots, 0),
        }

    def _constants(self):
        return self._windows, self._starts, self._slots
