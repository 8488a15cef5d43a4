"""Metrics of a backtest's predictions, per fold and over all test windows.

Score columns are grouped by their prefix: ``model.`` → "models",
``ensemble.`` → "ensembles", ``baseline.`` → "baseline". Every score is
evaluated against the raw forward return (entered at the next close) on
exactly the same (date, symbol) rows where that return is known, at every
horizon the dataset has (IC decay), with t-statistics that allow for
overlapping labels (:func:`training.metrics.t_statistics`).

:func:`evaluate_backtest` adds what a quant asks next: paired tests of the
default ensemble against the baseline and every member on the same label,
quantile returns, and the long-short spread after trading costs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.metrics import daily_metrics, paired_test, summarize
from training.portfolio import long_short, quantile_returns, summarize_long_short

SECTIONS = {"model.": "models", "ensemble.": "ensembles", "baseline.": "baseline"}
LABEL_PREFIX = {"models": "", "ensembles": "ensemble:", "baseline": "baseline:"}
BARS_PER_YEAR = 252.0


def score_columns(predictions: pd.DataFrame) -> dict[str, list[str]]:
    """{section: [column, ...]} of the score columns present."""
    out: dict[str, list[str]] = {section: [] for section in SECTIONS.values()}
    for column in predictions.columns:
        for prefix, section in SECTIONS.items():
            if column.startswith(prefix):
                out[section].append(column)
    return out


def column_label(column: str) -> str:
    """``model.lightgbm`` → ``lightgbm``; ``ensemble.x`` → ``ensemble:x``; ``baseline.y`` → ``baseline:y``."""
    prefix, name = column.split(".", 1)
    return {"model": name, "ensemble": f"ensemble:{name}", "baseline": f"baseline:{name}"}[prefix]


def _daily(predictions: pd.DataFrame, column: str, horizon_bars: int):
    return daily_metrics(
        predictions[column].to_numpy(),
        predictions[f"fwd_ret_{horizon_bars}"].to_numpy(),
        predictions["bar"].to_numpy(),
        symbols=predictions["symbol"].to_numpy(),
    )


def evaluate_predictions(predictions: pd.DataFrame, horizon_bars: int) -> dict[str, dict[str, dict[str, float]]]:
    """{"models": {name: summary}, "ensembles": {...}, "baseline": {...}}
    against the ``horizon_bars``-bar forward return."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for section, columns in score_columns(predictions).items():
        result[section] = {}
        for column in columns:
            daily = _daily(predictions, column, horizon_bars)
            result[section][column.split(".", 1)[1]] = summarize(daily, overlap_bars=horizon_bars)
    return result


def horizons_of(predictions: pd.DataFrame) -> list[int]:
    return sorted(int(c[len("fwd_ret_"):]) for c in predictions.columns if c.startswith("fwd_ret_"))


def evaluate_backtest(
    predictions: pd.DataFrame, *, target_horizon: int, default_ensemble: str, cost_bps: float
) -> dict:
    """Every score at every horizon, IC decay, paired tests, quantile
    returns and the cost-adjusted long-short spread (see the module
    docstring). Labels: member names, ``ensemble:<method>``,
    ``baseline:<name>``."""
    columns = [c for cs in score_columns(predictions).values() for c in cs]
    horizons = horizons_of(predictions)
    by_horizon = {str(h): evaluate_predictions(predictions, h) for h in horizons}
    ic_decay = {
        column_label(c): {str(h): by_horizon[str(h)][_section(c)][c.split(".", 1)[1]]["rank_ic"] for h in horizons}
        for c in columns
    }
    default_column = f"ensemble.{default_ensemble}"
    paired: dict[str, dict] = {}
    quantiles: dict[str, dict] = {}
    for h in horizons:
        daily_ic = {c: _daily(predictions, c, h).rank_ic for c in columns}
        others = [c for c in columns if c != default_column and not c.startswith("ensemble.")]
        if default_column in daily_ic:
            paired[str(h)] = {
                f"{column_label(default_column)} vs {column_label(c)}": paired_test(daily_ic[default_column], daily_ic[c], h)
                for c in others
            }
        forward = predictions[f"fwd_ret_{h}"].to_numpy()
        quantiles[str(h)] = {
            column_label(c): quantile_returns(predictions[c].to_numpy(), forward, predictions["bar"].to_numpy())
            for c in columns
        }
    forward = predictions[f"fwd_ret_{target_horizon}"].to_numpy()
    spreads = {
        column_label(c): long_short(
            predictions[c].to_numpy(), forward, predictions["bar"].to_numpy(), predictions["symbol"].to_numpy(),
            rebalance_every=target_horizon, cost_bps=cost_bps,
        )
        for c in columns
    }
    return {
        "by_horizon": by_horizon,
        "ic_decay": ic_decay,
        "paired": paired,
        "quantile_returns": quantiles,
        "long_short": {
            "rebalance_every_bars": int(target_horizon),
            "cost_bps_one_way": float(cost_bps),
            "scores": {
                label: summarize_long_short(frame, bars_per_year=BARS_PER_YEAR, rebalance_every=target_horizon)
                for label, frame in spreads.items()
            },
        },
        "_long_short_series": spreads,  # for the report's plot; not written to JSON
    }


def _section(column: str) -> str:
    return SECTIONS[column.split(".", 1)[0] + "."]


def evaluate_by_fold(predictions: pd.DataFrame, horizon_bars: int, dates: np.ndarray) -> list[dict]:
    """One entry per fold: its test dates and :func:`evaluate_predictions`."""
    folds = []
    for fold, frame in predictions.groupby("fold", sort=True):
        bars = frame["bar"]
        folds.append(
            {
                "fold": int(fold),
                "test_first_date": str(pd.Timestamp(dates[bars.min()]).date()),
                "test_last_date": str(pd.Timestamp(dates[bars.max()]).date()),
                "n_rows": int(len(frame)),
                **evaluate_predictions(frame, horizon_bars),
            }
        )
    return folds


def daily_rank_ic(predictions: pd.DataFrame, horizon_bars: int) -> pd.DataFrame:
    """[dates, score columns] per-date rank IC (for plots)."""
    forward = predictions[f"fwd_ret_{horizon_bars}"].to_numpy()
    columns = [c for cs in score_columns(predictions).values() for c in cs]
    series = {
        c: daily_metrics(predictions[c].to_numpy(), forward, predictions["date"].to_numpy()).rank_ic for c in columns
    }
    return pd.DataFrame(series)


def daily_spread(predictions: pd.DataFrame, horizon_bars: int) -> pd.DataFrame:
    """[dates, score columns] top-minus-bottom quintile forward return."""
    forward = predictions[f"fwd_ret_{horizon_bars}"].to_numpy()
    columns = [c for cs in score_columns(predictions).values() for c in cs]
    series = {
        c: daily_metrics(predictions[c].to_numpy(), forward, predictions["date"].to_numpy()).top_minus_bottom for c in columns
    }
    return pd.DataFrame(series)


def mean_importance(per_fold: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """{member: {feature: mean |SHAP| over folds}}, features by decreasing value."""
    collected: dict[str, list[dict[str, float]]] = {}
    for fold in per_fold:
        for member, values in fold.items():
            collected.setdefault(member, []).append(values)
    out = {}
    for member, folds in collected.items():
        mean = pd.DataFrame(folds).mean(axis=0).sort_values(ascending=False)
        out[member] = {str(k): float(v) for k, v in mean.items()}
    return out
