"""What a score would have earned: quantile returns and a long-short
portfolio rebalanced every h bars, with turnover and trading costs.

* :func:`quantile_returns`: each date's names cut into ``n_quantiles``
  buckets by score rank (bucket of the row of rank r among n:
  ``floor((r - 1) q / n)``, ties averaged first, so tied names share a
  bucket), the mean raw forward return per bucket, then the mean over
  dates; also less the date's mean return (market-relative).
* :func:`long_short`: on every h-th date (h = the label horizon, so the
  held returns do not overlap and add up) go long the top bucket and short
  the bottom one, equal weight, one unit each side. Turnover of a leg is
  the share of its names that were not in it at the previous rebalance;
  a replaced share f is sold and bought, so it trades 2 f of the leg. The
  cost of a rebalance is ``cost_bps`` (one way, per unit traded) times
  2 (f_long + f_short); the net spread is the gross spread less it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BPS = 1e-4


def _buckets(frame: pd.DataFrame, n_quantiles: int) -> pd.Series:
    by = frame.groupby("g", sort=True)["s"]
    rank = by.rank(method="average")
    count = by.transform("size")
    return np.floor((rank - 1.0) * n_quantiles / count).clip(0, n_quantiles - 1).astype(int)


def _valid_frame(score, forward_return, groups, symbols=None, min_names: int = 5) -> pd.DataFrame:
    score = np.asarray(score, dtype=np.float64)
    forward_return = np.asarray(forward_return, dtype=np.float64)
    keep = np.isfinite(score) & np.isfinite(forward_return)
    frame = pd.DataFrame({"g": np.asarray(groups)[keep], "s": score[keep], "r": forward_return[keep]})
    if symbols is not None:
        frame["name"] = np.asarray(symbols)[keep]
    return frame[frame.groupby("g")["s"].transform("size") >= min_names]


def quantile_returns(score, forward_return, groups, *, n_quantiles: int = 5) -> dict[str, list[float]]:
    """{"mean": [bucket 0 (lowest score) .. q-1], "excess": the same less
    each date's mean return}: means over dates of per-date bucket means."""
    frame = _valid_frame(score, forward_return, groups)
    if frame.empty:
        nan = [float("nan")] * n_quantiles
        return {"mean": nan, "excess": nan}
    frame["q"] = _buckets(frame, n_quantiles)
    frame["excess"] = frame["r"] - frame.groupby("g")["r"].transform("mean")
    per_date = frame.groupby(["g", "q"])[["r", "excess"]].mean().unstack("q")
    mean = per_date["r"].mean(axis=0).reindex(range(n_quantiles))
    excess = per_date["excess"].mean(axis=0).reindex(range(n_quantiles))
    return {"mean": [float(v) for v in mean], "excess": [float(v) for v in excess]}


def long_short(
    score, forward_return, groups, symbols, *, rebalance_every: int, cost_bps: float, n_quantiles: int = 5
) -> pd.DataFrame:
    """One row per rebalance date (every ``rebalance_every``-th date with a
    cross-section, from the first): ``gross`` (top − bottom bucket mean
    forward return), ``turnover`` (mean of the legs' replaced shares; NaN
    at the first), ``cost`` and ``net``."""
    frame = _valid_frame(score, forward_return, groups, symbols)
    columns = ["gross", "turnover", "cost", "net"]
    if frame.empty:
        return pd.DataFrame(columns=columns, dtype=np.float64)
    frame["q"] = _buckets(frame, n_quantiles)
    dates = np.sort(frame["g"].unique())[:: max(int(rebalance_every), 1)]
    frame = frame[frame["g"].isin(dates)]
    top = frame[frame["q"] == n_quantiles - 1]
    bottom = frame[frame["q"] == 0]
    gross = top.groupby("g")["r"].mean() - bottom.groupby("g")["r"].mean()
    legs = {"top": top.groupby("g")["name"].agg(frozenset), "bottom": bottom.groupby("g")["name"].agg(frozenset)}
    rows = []
    previous = None
    for date in dates:
        replaced = []
        for leg in ("top", "bottom"):
            now = legs[leg].get(date)
            before = legs[leg].get(previous) if previous is not None else None
            if now and before is not None:
                replaced.append(len(now - before) / len(now))
        turnover = float(np.mean(replaced)) if replaced else float("nan")
        # a replaced share f of each leg is sold and bought: 2 f per leg
        cost = cost_bps * BPS * 2.0 * 2.0 * turnover if replaced else 0.0
        rows.append((date, float(gross.get(date, np.nan)), turnover, cost))
        previous = date
    out = pd.DataFrame(rows, columns=["g", "gross", "turnover", "cost"]).set_index("g")
    out["net"] = out["gross"] - out["cost"]
    return out[columns]


def summarize_long_short(rebalances: pd.DataFrame, *, bars_per_year: float, rebalance_every: int) -> dict[str, float]:
    """Means per rebalance and the annualised gross and net spreads."""
    per_year = bars_per_year / max(int(rebalance_every), 1)
    gross, net = rebalances["gross"].dropna(), rebalances["net"].dropna()

    def sharpe(x: pd.Series) -> float:
        return float(x.mean() / x.std(ddof=1) * np.sqrt(per_year)) if len(x) > 1 and x.std(ddof=1) > 0 else float("nan")

    return {
        "rebalances": int(len(rebalances)),
        "gross_per_rebalance": float(gross.mean()) if len(gross) else float("nan"),
        "turnover_per_rebalance": float(rebalances["turnover"].dropna().mean()) if len(rebalances) else float("nan"),
        "cost_per_rebalance": float(rebalances["cost"].mean()) if len(rebalances) else float("nan"),
        "net_per_rebalance": float(net.mean()) if len(net) else float("nan"),
        "gross_annualised": float(gross.mean() * per_year) if len(gross) else float("nan"),
        "net_annualised": float(net.mean() * per_year) if len(net) else float("nan"),
        "net_sharpe": sharpe(net),
    }
