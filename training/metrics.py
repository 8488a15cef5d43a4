"""Cross-sectional evaluation of scores against forward returns.

Everything is computed per date (one cross-section of symbols), then
summarised over dates:

* ``ic``: Pearson correlation of score and forward return per date, mean
  over dates; ``rank_ic`` the same with Spearman (average-tie ranks);
* ``icir`` / ``rank_icir``: mean / standard deviation (ddof = 1) of the
  per-date series, not annualised;
* ``hit_rate``: share of (date, symbol) samples whose score and return lie
  on the same side of their date's medians (direction relative to the
  cross-section; samples exactly at a median don't count);
* ``top_minus_bottom``: mean over dates of (mean return of the top score
  quintile − mean return of the bottom quintile), in forward-return units
  (an h-bar return for h-bar labels);
* ``turnover``: mean over consecutive dates of the share of the top and of
  the bottom quintile's names that were not in it on the previous date
  (the average of both legs).

Dates with fewer than ``min_names`` valid (finite score and return) samples
are skipped. Inputs are aligned arrays; ``groups`` is the date (any
sortable key), rows need not be sorted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

QUANTILES = 5
MIN_NAMES = 5
SUMMARY_KEYS = (
    "ic", "rank_ic", "icir", "rank_icir", "hit_rate", "top_minus_bottom", "turnover", "n_dates", "rank_ic_t_stat",
    "rank_ic_t_newey_west", "rank_ic_t_nonoverlapping",
)


@dataclass(frozen=True)
class DailyMetrics:
    """Per-date series, indexed by the group key (sorted)."""

    ic: pd.Series
    rank_ic: pd.Series
    top_minus_bottom: pd.Series
    turnover: pd.Series
    hits: int
    hit_samples: int


def daily_metrics(
    score: np.ndarray,
    forward_return: np.ndarray,
    groups: np.ndarray,
    *,
    min_names: int = MIN_NAMES,
    symbols: np.ndarray | None = None,
) -> DailyMetrics:
    """Per-date IC, rank IC, quintile spread and turnover. ``symbols``
    identifies names across dates for turnover (row positions otherwise
    cannot be compared; without it turnover is NaN)."""
    score = np.asarray(score, dtype=np.float64)
    forward_return = np.asarray(forward_return, dtype=np.float64)
    groups = np.asarray(groups)
    valid = np.isfinite(score) & np.isfinite(forward_return)
    frame = pd.DataFrame({"g": groups[valid], "s": score[valid], "r": forward_return[valid]})
    if symbols is not None:
        frame["name"] = np.asarray(symbols)[valid]
    frame = frame[frame.groupby("g")["s"].transform("size") >= min_names]
    if frame.empty:
        empty = pd.Series(dtype=np.float64)
        return DailyMetrics(empty, empty, empty, empty, 0, 0)
    by = frame.groupby("g", sort=True)
    frame["s_rank"] = by["s"].rank(method="average")
    frame["r_rank"] = by["r"].rank(method="average")
    ic = _pearson_by(frame, "s", "r")
    rank_ic = _pearson_by(frame, "s_rank", "r_rank")

    count = by["s"].transform("size").to_numpy()
    # Quintile by score rank: the top quintile is the ceil(n/5) best names.
    # Rank ties are averaged, so tied names fall in the same quintile.
    cut = np.ceil(count / QUANTILES)
    frame["top"] = frame["s_rank"].to_numpy() > count - cut
    frame["bottom"] = frame["s_rank"].to_numpy() <= cut
    top = frame[frame["top"]].groupby("g")["r"].mean()
    bottom = frame[frame["bottom"]].groupby("g")["r"].mean()
    spread = (top - bottom).reindex(ic.index)

    s_med = by["s"].transform("median").to_numpy()
    r_med = by["r"].transform("median").to_numpy()
    s_side = np.sign(frame["s"].to_numpy() - s_med)
    r_side = np.sign(frame["r"].to_numpy() - r_med)
    counted = (s_side != 0) & (r_side != 0)
    hits = int((s_side[counted] == r_side[counted]).sum())

    turnover = _turnover(frame) if symbols is not None else pd.Series(np.nan, index=ic.index)
    return DailyMetrics(ic, rank_ic, spread, turnover, hits, int(counted.sum()))


def summarize(daily: DailyMetrics, *, overlap_bars: int = 1) -> dict[str, float]:
    """Summary over dates (see the module docstring). The t-statistics of
    the mean rank IC allow for ``overlap_bars``-bar forward returns, which
    overlap on consecutive dates (:func:`t_statistics`)."""
    ic, rank_ic = daily.ic.dropna(), daily.rank_ic.dropna()
    t = t_statistics(rank_ic, overlap_bars)
    return {
        "ic": _mean(ic),
        "rank_ic": _mean(rank_ic),
        "icir": _ratio(ic),
        "rank_icir": _ratio(rank_ic),
        "hit_rate": daily.hits / daily.hit_samples if daily.hit_samples else float("nan"),
        "top_minus_bottom": _mean(daily.top_minus_bottom.dropna()),
        "turnover": _mean(daily.turnover.dropna()),
        "n_dates": int(len(rank_ic)),
        "rank_ic_t_stat": t["hansen_hodrick"],
        "rank_ic_t_newey_west": t["newey_west"],
        "rank_ic_t_nonoverlapping": t["nonoverlapping"],
    }


def t_statistics(daily: pd.Series, overlap_bars: int) -> dict[str, float]:
    """t-statistics of the mean of a daily series whose terms overlap by
    ``overlap_bars`` - 1 bars, three ways:

    * ``hansen_hodrick``: :func:`overlap_standard_error` (the MA(h − 1)
      structure overlap produces);
    * ``newey_west``: Bartlett weights up to lag 2h, also robust to a
      signal that persists longer than its horizon;
    * ``nonoverlapping``: the plain t of every h-th date (no two terms
      share a return), averaged over the h possible starting dates.
    """
    x = pd.Series(daily).dropna().to_numpy(dtype=np.float64)
    h = max(int(overlap_bars), 1)
    mean = float(x.mean()) if len(x) else float("nan")

    def ratio(se: float) -> float:
        return mean / se if se and np.isfinite(se) and se > 0 else float("nan")

    subsample_t = []
    for offset in range(min(h, len(x))):
        sub = x[offset::h]
        if len(sub) >= 2 and sub.std(ddof=1) > 0:
            subsample_t.append(sub.mean() / (sub.std(ddof=1) / np.sqrt(len(sub))))
    return {
        "hansen_hodrick": ratio(overlap_standard_error(x, h)),
        "newey_west": ratio(newey_west_standard_error(x, 2 * h)),
        "nonoverlapping": float(np.mean(subsample_t)) if subsample_t else float("nan"),
    }


def paired_test(a: pd.Series, b: pd.Series, overlap_bars: int) -> dict[str, float]:
    """Is the mean of daily series ``a`` above ``b`` (both indexed by date)?
    On the dates both have: the mean difference, its t-statistics
    (:func:`t_statistics`; a paired test, so the day-to-day noise the two
    share cancels) and the share of dates ``a`` is ahead."""
    joined = pd.concat([pd.Series(a, name="a"), pd.Series(b, name="b")], axis=1).dropna()
    difference = joined["a"] - joined["b"]
    t = t_statistics(difference, overlap_bars)
    return {
        "mean_difference": _mean(difference),
        "t_stat": t["hansen_hodrick"],
        "t_newey_west": t["newey_west"],
        "t_nonoverlapping": t["nonoverlapping"],
        "share_of_dates_ahead": float((difference > 0).mean()) if len(difference) else float("nan"),
        "n_dates": int(len(difference)),
    }


def evaluate(score, forward_return, groups, *, symbols=None, overlap_bars: int = 1, min_names: int = MIN_NAMES) -> dict[str, float]:
    """:func:`summarize` of :func:`daily_metrics`."""
    return summarize(daily_metrics(score, forward_return, groups, symbols=symbols, min_names=min_names), overlap_bars=overlap_bars)


def overlap_standard_error(series: np.ndarray, overlap_bars: int) -> float:
    """Standard error of the mean of a daily series whose terms share
    ``overlap_bars``-bar forward returns: autocovariances up to lag h − 1
    with equal weights (Hansen and Hodrick, 1980), which is what h-bar
    overlap produces; Newey–West's tapering would understate it. Falls back
    to Newey–West when the estimate is not positive (short samples)."""
    x = np.asarray(series, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 2:
        return float("nan")
    d = x - x.mean()
    variance = d @ d / n
    for lag in range(1, min(overlap_bars - 1, n - 1) + 1):
        variance += 2.0 * (d[lag:] @ d[:-lag]) / n
    if variance <= 0:
        return newey_west_standard_error(x, max(overlap_bars - 1, 0))
    return float(np.sqrt(variance / n))


def newey_west_standard_error(series: np.ndarray, lags: int) -> float:
    """Standard error of the mean of ``series`` with Bartlett-weighted
    autocovariances up to ``lags`` (Newey and West, 1987)."""
    x = np.asarray(series, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 2:
        return float("nan")
    d = x - x.mean()
    variance = d @ d / n
    for lag in range(1, min(lags, n - 1) + 1):
        variance += 2.0 * (1.0 - lag / (lags + 1.0)) * (d[lag:] @ d[:-lag]) / n
    return float(np.sqrt(max(variance, 0.0) / n))


def _pearson_by(frame: pd.DataFrame, x: str, y: str) -> pd.Series:
    by = frame.groupby("g", sort=True)
    xm = frame[x] - by[x].transform("mean")
    ym = frame[y] - by[y].transform("mean")
    parts = pd.DataFrame({"g": frame["g"], "xy": xm * ym, "xx": xm * xm, "yy": ym * ym}).groupby("g", sort=True).sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = parts["xy"] / np.sqrt(parts["xx"] * parts["yy"])
    # A constant score or return carries no ordering: no IC that date.
    return corr.where((parts["xx"] > 0) & (parts["yy"] > 0))


def _turnover(frame: pd.DataFrame) -> pd.Series:
    dates = list(frame["g"].drop_duplicates().sort_values())
    legs = {leg: frame[frame[leg]].groupby("g")["name"].agg(frozenset) for leg in ("top", "bottom")}
    values = {}
    for previous, current in zip(dates[:-1], dates[1:]):
        shares = []
        for leg in ("top", "bottom"):
            now, before = legs[leg].get(current), legs[leg].get(previous)
            if now and before is not None:
                shares.append(len(now - before) / len(now))
        values[current] = float(np.mean(shares)) if shares else np.nan
    return pd.Series(values, dtype=np.float64)


def _mean(series: pd.Series) -> float:
    return float(series.mean()) if len(series) else float("nan")


def _ratio(series: pd.Series) -> float:
    if len(series) < 2:
        return float("nan")
    std = float(series.std(ddof=1))
    return float(series.mean()) / std if std > 0 else float("nan")
