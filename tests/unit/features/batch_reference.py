"""An independent batch computation of the Alpha158 and US-equity features,
written from the published definitions (Qlib's ``Alpha158DL`` expressions and
the operators of ``qlib/data/ops.py``; the US-equity definitions in
:mod:`signalml.feature_sets`), with the conventions the streaming library
documents (full windows only, VWAP proxy, RANK in (0, 1], NaN correlation
and R² on a constant input).

It shares no code with the engine. Each symbol's bars are laid out by bar
number (row j = the symbol's j-th applied bar, one column per symbol), so
shifts and rolling windows run down the columns. pandas computes what it
computes exactly (shifts, rolling max, min, quantile and rank, per-date
means); sums, means and moments (std, regression, R², correlation) are
two-pass sums over explicit windows with numpy, each window measured from its
own last value: pandas' rolling sums run over the whole history and keep an
absolute error the size of the largest values seen (a mean of tiny values
after large ones loses digits), and its one-pass moments lose digits on
windows of low variance. A reference must be the accurate side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

WINDOWS = (5, 10, 20, 30, 60)
EPS = 1e-12  # Qlib's denominators
CHUNK = 64  # symbols per block of explicit windows (bounds the memory)


class Panel:
    """A bars table (applied bars, any order) laid out by bar number."""

    def __init__(self, bars: pd.DataFrame):
        bars = bars.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
        self.bars = bars
        self.position = bars.groupby("symbol", sort=False).cumcount().to_numpy()
        self.symbols = pd.Index(bars["symbol"].unique())
        self.column = self.symbols.get_indexer(bars["symbol"])
        self.length = int(self.position.max()) + 1

    def wide(self, name_or_values) -> pd.DataFrame:
        values = self.bars[name_or_values].to_numpy() if isinstance(name_or_values, str) else np.asarray(name_or_values)
        grid = np.full((self.length, len(self.symbols)), np.nan)
        grid[self.position, self.column] = values
        return pd.DataFrame(grid)

    def long(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Back to one value per bar, in the order of :attr:`bars`."""
        grid = frame.to_numpy() if isinstance(frame, pd.DataFrame) else frame
        return grid[self.position, self.column]


def windows_apply(frame: pd.DataFrame, d: int, statistic) -> pd.DataFrame:
    """``statistic(window [rows, symbols, d], last [rows, symbols, 1])`` of
    every full window down each column, NaN before; symbols in blocks."""
    grid = frame.to_numpy()
    out = np.full(grid.shape, np.nan)
    for start in range(0, grid.shape[1], CHUNK):
        block = grid[:, start : start + CHUNK]
        if len(block) < d:
            continue
        window = sliding_window_view(block, d, axis=0)  # [rows - d + 1, symbols, d], oldest first
        with np.errstate(all="ignore"):
            out[d - 1 :, start : start + CHUNK] = statistic(window, window[..., -1:])
    return pd.DataFrame(out)


def pair_windows_apply(x: pd.DataFrame, y: pd.DataFrame, d: int, statistic) -> pd.DataFrame:
    gx, gy = x.to_numpy(), y.to_numpy()
    out = np.full(gx.shape, np.nan)
    for start in range(0, gx.shape[1], CHUNK):
        bx, by = gx[:, start : start + CHUNK], gy[:, start : start + CHUNK]
        if len(bx) < d:
            continue
        wx, wy = sliding_window_view(bx, d, axis=0), sliding_window_view(by, d, axis=0)
        with np.errstate(all="ignore"):
            out[d - 1 :, start : start + CHUNK] = statistic(wx, wy)
    return pd.DataFrame(out)


def total(window, last):
    return window.sum(axis=-1)


def mean(window, last):
    return window.sum(axis=-1) / window.shape[-1]


def deviations(window, last):
    """Deviations from the window's mean, measured from its last value (a
    constant window gives exact zeros)."""
    shifted = window - last
    return shifted - shifted.mean(axis=-1, keepdims=True)


def std(window, last):
    dev = deviations(window, last)
    return np.sqrt((dev * dev).sum(axis=-1) / (window.shape[-1] - 1))


def _centred_positions(d):
    return np.arange(1, d + 1) - (d + 1) / 2.0


def slope(window, last):
    c = _centred_positions(window.shape[-1])
    return ((window - last) * c).sum(axis=-1) / (c * c).sum()


def rsquare(window, last):
    c = _centred_positions(window.shape[-1])
    dev = deviations(window, last)
    co = (dev * c).sum(axis=-1)
    r2 = co * co / ((c * c).sum() * (dev * dev).sum(axis=-1))
    return np.where(window.max(axis=-1) > window.min(axis=-1), r2, np.nan)


def residual(window, last):
    d = window.shape[-1]
    shifted = window - last
    fitted = shifted.mean(axis=-1) + slope(window, last) * _centred_positions(d)[-1]
    return shifted[..., -1] - fitted


def argmax_position(window, last):
    position = np.argmax(window, axis=-1) + 1.0  # 1-based, oldest first, first of equal maxima
    return np.where(np.isnan(window).any(axis=-1), np.nan, position)


def argmin_position(window, last):
    position = np.argmin(window, axis=-1) + 1.0
    return np.where(np.isnan(window).any(axis=-1), np.nan, position)


def correlation(wx, wy):
    dx = deviations(wx, wx[..., -1:])
    dy = deviations(wy, wy[..., -1:])
    r = (dx * dy).sum(axis=-1) / np.sqrt((dx * dx).sum(axis=-1) * (dy * dy).sum(axis=-1))
    constant = (wx.max(axis=-1) == wx.min(axis=-1)) | (wy.max(axis=-1) == wy.min(axis=-1))
    finite = np.isfinite(wx).all(axis=-1) & np.isfinite(wy).all(axis=-1)
    return np.where(finite & ~constant, r, np.nan)


def alpha158(panel: Panel, windows=WINDOWS) -> dict[str, np.ndarray]:
    """Every Alpha158 feature, one value per bar of ``panel.bars``."""
    b = panel.bars
    o, h, lo, c, v = (b[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    span = h - lo + EPS
    out = {
        "KMID": (c - o) / o,
        "KLEN": (h - lo) / o,
        "KMID2": (c - o) / span,
        "KUP": (h - np.maximum(o, c)) / o,
        "KUP2": (h - np.maximum(o, c)) / span,
        "KLOW": (np.minimum(o, c) - lo) / o,
        "KLOW2": (np.minimum(o, c) - lo) / span,
        "KSFT": (2 * c - h - lo) / o,
        "KSFT2": (2 * c - h - lo) / span,
        "OPEN0": o / c,
        "HIGH0": h / c,
        "LOW0": lo / c,
        "VWAP0": ((h + lo + c) / 3) / c,
    }
    close, high, low, volume = (panel.wide(k) for k in ("close", "high", "low", "volume"))
    change = close - close.shift(1)
    volume_change = volume - volume.shift(1)
    log_volume = np.log(volume + 1)
    with np.errstate(all="ignore"):
        cord_x = close / close.shift(1)
        cord_y = np.log(volume / volume.shift(1) + 1)
    weighted = (close / close.shift(1) - 1).abs() * volume
    up = (close > close.shift(1)).astype(float).where(close.shift(1).notna())
    down = (close < close.shift(1)).astype(float).where(close.shift(1).notna())
    up_count, down_count = {}, {}
    table: dict[str, pd.DataFrame] = {}
    for d in windows:
        table[f"ROC{d}"] = close.shift(d) / close
        table[f"MA{d}"] = windows_apply(close, d, mean) / close
        table[f"STD{d}"] = windows_apply(close, d, std) / close
        table[f"BETA{d}"] = windows_apply(close, d, slope) / close
        table[f"RSQR{d}"] = windows_apply(close, d, rsquare)
        table[f"RESI{d}"] = windows_apply(close, d, residual) / close
        table[f"MAX{d}"] = high.rolling(d).max() / close
        table[f"MIN{d}"] = low.rolling(d).min() / close
        table[f"QTLU{d}"] = close.rolling(d).quantile(0.8) / close
        table[f"QTLD{d}"] = close.rolling(d).quantile(0.2) / close
        table[f"RANK{d}"] = close.rolling(d).rank(pct=True)
        lowest, highest = low.rolling(d).min(), high.rolling(d).max()
        table[f"RSV{d}"] = (close - lowest) / (highest - lowest + EPS)
        imax = windows_apply(high, d, argmax_position)
        imin = windows_apply(low, d, argmin_position)
        table[f"IMAX{d}"] = imax / d
        table[f"IMIN{d}"] = imin / d
        table[f"IMXD{d}"] = (imax - imin) / d
        table[f"CORR{d}"] = pair_windows_apply(close, log_volume, d, correlation)
        table[f"CORD{d}"] = pair_windows_apply(cord_x, cord_y, d, correlation)
        table[f"CNTP{d}"] = windows_apply(up, d, mean)
        table[f"CNTN{d}"] = windows_apply(down, d, mean)
        table[f"CNTD{d}"] = table[f"CNTP{d}"] - table[f"CNTN{d}"]
        for prefix, delta in (("", change), ("V", volume_change)):
            gains = windows_apply(delta.clip(lower=0), d, total)
            losses = windows_apply((-delta).clip(lower=0), d, total)
            moved = windows_apply(delta.abs(), d, total) + EPS
            table[f"{prefix}SUMP{d}"] = gains / moved
            table[f"{prefix}SUMN{d}"] = losses / moved
            table[f"{prefix}SUMD{d}"] = (gains - losses) / moved
        table[f"VMA{d}"] = windows_apply(volume, d, mean) / (volume + EPS)
        table[f"VSTD{d}"] = windows_apply(volume, d, std) / (volume + EPS)
        table[f"WVMA{d}"] = windows_apply(weighted, d, std) / (windows_apply(weighted, d, mean) + EPS)
    out.update({name: panel.long(frame) for name, frame in table.items()})
    return out


def us_equity(panel: Panel, market_windows=(20, 60)) -> dict[str, np.ndarray]:
    """The US-equity extras, one value per bar of ``panel.bars``."""
    b = panel.bars
    returns = b["close"] / b.groupby("symbol", sort=False)["close"].shift(1) - 1
    market = returns.groupby(b["date"]).transform("mean")  # mean over the symbols with a return that day
    close, high = panel.wide("close"), panel.wide("high")
    own, mkt = panel.wide(returns.to_numpy()), panel.wide(market.to_numpy())
    out = {}

    def regression(d, what):
        def statistic(wr, wm):
            dr = wr - wr.mean(axis=-1, keepdims=True)
            dm = wm - wm.mean(axis=-1, keepdims=True)
            beta = (dr * dm).sum(axis=-1) / (dm * dm).sum(axis=-1)
            if what == "beta":
                return beta
            e = dr - beta[..., None] * dm
            return np.sqrt((e * e).sum(axis=-1) / (d - 1))

        return panel.long(pair_windows_apply(own, mkt, d, statistic))

    for d in market_windows:
        out[f"mkt_beta_{d}"] = regression(d, "beta")
    for d in market_windows:
        out[f"idio_vol_{d}"] = regression(d, "idio")
    out["log_dollar_volume_20"] = panel.long(np.log1p(windows_apply(close * panel.wide("volume"), 20, mean)))
    out["mom_12_1"] = panel.long(close.shift(21) / close.shift(252) - 1)
    out["dist_52w_high"] = panel.long(close / high.rolling(252).max() - 1)
    return out
