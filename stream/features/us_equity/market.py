"""Market beta and idiosyncratic volatility against the cross-sectional mean return.

    market return m_t = mean of the one-bar returns close / previous close - 1
                        of the symbols with a bar (and a previous bar) at t
    mkt_beta_{d}      = OLS slope of a symbol's last d returns on the market
                        returns of the same bar times
    idio_vol_{d}      = standard deviation (ddof 1) of that regression's
                        residuals: sqrt(SSR / (d - 1))

A symbol's return spans from its previous bar, a gap included; it is paired
with the market return of its own bar time.

m_t needs the whole cross-section of t, so the state splits in two. Per
symbol (:class:`MarketInputs`, a kernel like the others) the sums of m, m²,
r, r² and r·m over its previous d - 1 bars, whose market returns are final,
and its return of the latest bar. Per bar time (the engine's part,
:class:`MarketClock`) m_t itself: the mean over the symbols applied at t so
far, final once a later bar time begins. :func:`combine` adds the latest
pair to the sums and solves the regression for the symbols of one bar time.

The mean adds the returns in sorted order, so it does not depend on the
order in which bars arrived: one call with the cross-section and one call
per bar give the same bits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from signalml.feature_sets import MARKET_WINDOWS
from stream.features.codec import decode_array, encode_array
from stream.features.jit import COLLAPSE, jit, jit_inline
from stream.features.jit_kernel import JitKernel
from stream.features.jit_windows import rebuild_due, rebuild_offsets, ring_bars

SUMS = ("m", "mm", "r", "rr", "rm", "bad")  # per window; bad: pairs with no market return
NO_TS = np.iinfo(np.int64).min


@jit_inline
def _rebuild(returns, markets, row, first, last, sums, at):
    """Sums over the pairs of bars first .. last (inclusive)."""
    mask = returns.shape[0] - 1
    for k in range(6):
        sums[at + k, row] = 0.0
    for j in range(first, last + 1):
        r = returns[j & mask, row]
        m = markets[j & mask, row]
        if math.isfinite(r) and math.isfinite(m):
            sums[at, row] += m
            sums[at + 1, row] += m * m
            sums[at + 2, row] += r
            sums[at + 3, row] += r * r
            sums[at + 4, row] += r * m
        else:
            sums[at + 5, row] += 1.0


@jit
def _loop(rows, seen, open_, high, low, close, volume, out, out_rows,
          bars_seen, prev_close, returns, markets, sums, peaks, windows, offsets):
    mask = returns.shape[0] - 1
    n_windows = windows.shape[0]
    for i in range(rows.shape[0]):
        r = rows[i]
        n = seen[i]
        own = close[i] / prev_close[r] - 1.0  # NaN on a symbol's first bar
        returns[n & mask, r] = own
        markets[n & mask, r] = math.nan  # known once its bar time is complete
        for w in range(n_windows):
            d = windows[w]
            at = 6 * w
            if n < d:  # the previous d - 1 pairs start after the first bar
                for k in range(6):
                    column = out_rows[at + k]
                    if column >= 0:
                        out[column, i] = math.nan
                continue
            if rebuild_due(n, d, offsets[w]):
                _rebuild(returns, markets, r, n - d + 1, n - 1, sums, at)
                peaks[2 * w, r] = sums[at + 1, r]
                peaks[2 * w + 1, r] = sums[at + 3, r]
            else:
                for sign, j in ((1.0, n - 1), (-1.0, n - d)):
                    x = returns[j & mask, r]
                    m = markets[j & mask, r]
                    if math.isfinite(x) and math.isfinite(m):
                        sums[at, r] += sign * m
                        sums[at + 1, r] += sign * (m * m)
                        sums[at + 2, r] += sign * x
                        sums[at + 3, r] += sign * (x * x)
                        sums[at + 4, r] += sign * (x * m)
                    else:
                        sums[at + 5, r] += sign
                peak_m = max(peaks[2 * w, r], sums[at + 1, r])
                peak_r = max(peaks[2 * w + 1, r], sums[at + 3, r])
                pairs = d - 1.0
                spread_m = sums[at + 1, r] - sums[at, r] * sums[at, r] / pairs
                spread_r = sums[at + 3, r] - sums[at + 2, r] * sums[at + 2, r] / pairs
                if sums[at + 5, r] == 0.0 and (spread_m < COLLAPSE * peak_m or spread_r < COLLAPSE * peak_r):
                    _rebuild(returns, markets, r, n - d + 1, n - 1, sums, at)
                    peak_m, peak_r = sums[at + 1, r], sums[at + 3, r]
                peaks[2 * w, r], peaks[2 * w + 1, r] = peak_m, peak_r
            for k in range(6):
                column = out_rows[at + k]
                if column >= 0:
                    out[column, i] = sums[at + k, r]
        column = out_rows[6 * n_windows]
        if column >= 0:
            out[column, i] = own
        prev_close[r] = close[i]
        bars_seen[r] = n + 1


class MarketInputs(JitKernel):
    """Per symbol, for each window d: the sums :data:`SUMS` over its previous
    d - 1 bars, then its latest return (the inputs of :func:`combine`)."""

    kind = "us_equity_market_inputs"
    _loop = _loop

    def __init__(self, windows=MARKET_WINDOWS, capacity: int = 1):
        self.windows = tuple(sorted(int(d) for d in windows))
        self.output_names = tuple(f"market_{s}_{d}" for d in self.windows for s in SUMS) + ("market_own_return",)
        self.warmup_bars = tuple(d + 1 for d in self.windows for _ in SUMS) + (2,)
        self._windows = np.asarray(self.windows, dtype=np.int64)
        self._offsets = rebuild_offsets(len(self.windows))
        super().__init__(capacity)

    def params(self):
        return {"windows": list(self.windows)}

    def _declare(self):
        ring = (ring_bars(max(self.windows) + 1),)
        return {
            "bars_seen": (np.int64, (), 0),
            "prev_close": (np.float64, (), np.nan),
            "returns": (np.float64, ring, np.nan),  # return of bar j in slot j & (ring - 1)
            "markets": (np.float64, ring, np.nan),  # market return of bar j's bar time, once final
            "sums": (np.float64, (6 * len(self.windows),), 0.0),
            "peaks": (np.float64, (2 * len(self.windows),), 0.0),
        }

    def _constants(self):
        return self._windows, self._offsets

    def latest_returns(self, rows: np.ndarray) -> np.ndarray:
        """Each row's return of its latest bar [k] (NaN before a second bar)."""
        slots = (self.bars_seen[rows] - 1) & (self.returns.shape[0] - 1)
        return self.returns[slots, rows]

    def settle(self, rows: np.ndarray, market_return: float) -> None:
        """The market return of the bar time of each row's latest bar is final."""
        if len(rows):
            slots = (self.bars_seen[rows] - 1) & (self.markets.shape[0] - 1)
            self.markets[slots, rows] = market_return


def market_return(returns: np.ndarray) -> float:
    """Mean of the finite ``returns``, added in sorted order (NaN if none)."""
    finite = np.sort(returns[np.isfinite(returns)])
    return float(finite.sum() / len(finite)) if len(finite) else math.nan


@jit
def _combine(windows, market, inputs, out):
    n_windows = windows.shape[0]
    finite_market = math.isfinite(market)
    for i in range(inputs.shape[1]):
        own = inputs[6 * n_windows, i]
        for w in range(n_windows):
            d = windows[w]
            sm = inputs[6 * w, i] + market
            smm = inputs[6 * w + 1, i] + market * market
            sr = inputs[6 * w + 2, i] + own
            srr = inputs[6 * w + 3, i] + own * own
            srm = inputs[6 * w + 4, i] + own * market
            spread_m = smm - sm * sm / d
            co = srm - sm * sr / d
            spread_r = srr - sr * sr / d
            beta = co / spread_m
            residual = math.sqrt(max(spread_r - co * beta, 0.0) / (d - 1))
            if inputs[6 * w + 5, i] != 0.0 or not spread_m > 0.0 or not math.isfinite(own) or not finite_market:
                beta = residual = math.nan
            out[w, i] = beta
            out[n_windows + w, i] = residual


def combine(windows: np.ndarray, market: float, inputs: np.ndarray) -> np.ndarray:
    """``mkt_beta_{d}`` for each window, then ``idio_vol_{d}`` [2W, k], from
    the :class:`MarketInputs` outputs [6W + 1, k] of symbols whose latest bar
    time has market return ``market``; NaN where a window holds a pair with
    no market return, the market did not move, or a return is missing."""
    out = np.empty((2 * len(windows), inputs.shape[1]))
    _combine(windows, float(market), inputs, out)
    return out


class MarketClock:
    """The market return of recent bar times (the engine's part of the state).

    A bar time's return is final once a later bar time begins (:meth:`close`,
    called with the rows whose latest bar is at that time); a bar that comes
    later for an earlier bar time (a late bar) is paired with the return the
    time closed with, as long as that time is one of the last
    :attr:`memory_bar_times`.
    """

    def __init__(self, memory_bar_times: int = 512):
        self.memory_bar_times = memory_bar_times
        self._ts = np.full(memory_bar_times, NO_TS, dtype=np.int64)
        self._return = np.full(memory_bar_times, np.nan)
        self._closed = 0

    def close(self, ts: int, market: float) -> None:
        slot = self._closed % self.memory_bar_times
        self._ts[slot], self._return[slot] = ts, market
        self._closed += 1

    def closed_return(self, ts: int) -> float:
        """The return bar time ``ts`` closed with (NaN if unknown)."""
        hit = np.flatnonzero(self._ts == ts)
        return float(self._return[hit[0]]) if len(hit) else math.nan

    def state(self) -> dict[str, Any]:
        return {"ts": encode_array(self._ts), "return": encode_array(self._return), "closed": self._closed}

    def restore(self, state: dict[str, Any]) -> None:
        self._ts = decode_array(state["ts"])
        self._return = decode_array(state["return"])
        self._closed = int(state["closed"])
        self.memory_bar_times = len(self._ts)
