"""Metrics of a backtest's predictions, per fold and over all test windows.

Score columns are grouped by their prefix: ``model.`` → "models",
``ensemble.`` → "ensembles", ``baseline.`` → "baseline". Every score is
evaluated against the raw forward return of the target horizon on exactly
the same (date, symbol) rows where that return is known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.metrics import daily_metrics, summarize

SECTIONS = {"model.": "models", "ensemble.": "ensembles", "baseline.": "baseline"}


def score_columns(predictions: pd.DataFrame) -> dict[str, list[str]]:
    """{section: [column, ...]} of the score columns present."""
    out: dict[str, list[str]] = {section: [] for section in SECTIONS.values()}
    for column in predictions.columns:
        for prefix, section in SECTIONS.items():
            if column.startswith(prefix):
                out[section].append(column)
    return out


def evaluate_predictions(predictions: pd.DataFrame, horizon_bars: int) -> dict[str, dict[str, dict[str, float]]]:
    """{"models": {name: summary}, "ensembles": {...}, "baseline": {...}}."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    forward = predictions[f"fwd_ret_{horizon_bars}"].to_numpy()
    for section, columns in score_columns(predictions).items():
        result[section] = {}
        for column in columns:
            daily = daily_metrics(
                predictions[column].to_numpy(), forward, predictions["bar"].to_numpy(), symbols=predictions["symbol"].to_numpy()
            )
            result[section][column.split(".", 1)[1]] = summarize(daily, overlap_bars=horizon_bars)
    return result


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
