"""The training report: ``report.html``, one self-contained page.

Its plots (:mod:`training.report_plots`) are embedded as data URIs, so
the file alone can be mailed or archived; the same PNGs are written beside
it for convenience. Sections: the label and how it is evaluated; every
score at the target horizon and at every other horizon; the paired tests
of the default ensemble; quantile returns; the long-short spread after
costs; per test window; the plots; timing.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import numpy as np
import pandas as pd

from training import report_plots

TABLE_KEYS = (
    "rank_ic", "rank_ic_t_stat", "rank_ic_t_newey_west", "rank_ic_t_nonoverlapping", "rank_icir", "ic", "hit_rate",
    "top_minus_bottom", "turnover", "n_dates",
)
PAIRED_KEYS = ("mean_difference", "t_stat", "t_newey_west", "t_nonoverlapping", "share_of_dates_ahead", "n_dates")
SPREAD_KEYS = (
    "gross_per_rebalance", "turnover_per_rebalance", "cost_per_rebalance", "net_per_rebalance", "gross_annualised",
    "net_annualised", "net_sharpe", "rebalances",
)
PLOTS = ("ic_per_period.png", "cumulative_spread.png", "quantile_returns.png", "ic_decay.png", "feature_importance.png")


def write_report(
    out_dir: str | os.PathLike[str],
    metrics: dict,
    predictions: pd.DataFrame,
    horizon_bars: int,
    *,
    long_short_series: dict[str, pd.DataFrame] | None = None,
    dates: np.ndarray | None = None,
) -> Path:
    """Write ``report.html`` (and the PNGs) into ``out_dir``; returns the HTML path."""
    out_dir = Path(out_dir)
    default = f"ensemble:{metrics.get('default_ensemble', '')}"
    baselines = [f"baseline:{b}" for b in metrics.get("baseline", {})]
    if dates is None:
        dates = _bar_dates(predictions)
    images = {
        "ic_per_period.png": report_plots.ic_per_period(metrics.get("folds", [])),
        "cumulative_spread.png": report_plots.cumulative_spread(
            long_short_series or {}, dates, horizon_bars, metrics.get("long_short", {}).get("cost_bps_one_way", 0.0),
            highlight=(default, *baselines),
        ),
        "quantile_returns.png": report_plots.quantile_bars(
            metrics.get("quantile_returns", {}).get(str(horizon_bars), {}),
            (default, *baselines, *metrics.get("models", {})),
            horizon_bars,
        ),
        "ic_decay.png": report_plots.ic_decay(metrics.get("ic_decay", {})),
        "feature_importance.png": report_plots.importance(metrics.get("importance") or {}),
    }
    images = {name: png for name, png in images.items() if png is not None}
    for name, png in images.items():
        (out_dir / name).write_bytes(png)
    path = out_dir / "report.html"
    path.write_text(_html(metrics, images))
    return path


def _bar_dates(predictions: pd.DataFrame) -> np.ndarray:
    """Bar index → date, for the bars the predictions have (others NaT)."""
    if predictions.empty:
        return np.zeros(0, dtype="datetime64[ns]")
    pairs = predictions[["bar", "date"]].drop_duplicates("bar")
    out = np.full(int(pairs["bar"].max()) + 1, np.datetime64("NaT"), dtype="datetime64[ns]")
    out[pairs["bar"].to_numpy()] = pairs["date"].to_numpy(dtype="datetime64[ns]")
    return out


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return html.escape(str(value))


def _table(rows: list[tuple[str, dict]], keys: tuple[str, ...]) -> str:
    # spaces, not underscores, in headers: a narrow window can wrap them
    head = "".join(f"<th>{html.escape(k.replace('_', ' '))}</th>" for k in ("name", *keys))
    body = "".join(
        "<tr><td>" + html.escape(name) + "</td>" + "".join(f"<td>{_fmt(values.get(k))}</td>" for k in keys) + "</tr>"
        for name, values in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _scores(section_metrics: dict) -> list[tuple[str, dict]]:
    labels = {"models": "{}", "ensembles": "ensemble:{}", "baseline": "baseline:{}"}
    return [(labels[s].format(n), v) for s in ("models", "ensembles", "baseline") for n, v in section_metrics.get(s, {}).items()]


def _quantile_rows(quantiles: dict[str, dict]) -> tuple[list[tuple[str, dict]], tuple[str, ...]]:
    rows = []
    keys: tuple[str, ...] = ()
    for label, values in quantiles.items():
        excess = values.get("excess", [])
        keys = tuple(f"Q{q + 1}" for q in range(len(excess))) + ("Q5−Q1",)
        row = {f"Q{q + 1}": v * 1e4 for q, v in enumerate(excess)}
        if excess:
            row["Q5−Q1"] = (excess[-1] - excess[0]) * 1e4
        rows.append((label, row))
    return rows, keys


def _image(name: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<h2>{html.escape(name)}</h2><img src='data:image/png;base64,{data}' alt='{html.escape(name)}'>"


def _html(metrics: dict, images: dict[str, bytes]) -> str:
    default = metrics.get("default_ensemble", "")
    h = metrics.get("horizon_bars")
    label = metrics.get("label", {})
    fold_rows = [
        (f"window {f['fold']} ({f['test_first_date']} – {f['test_last_date']})", f["ensembles"].get(default, {}))
        for f in metrics.get("folds", [])
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>SignalML training report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
        "img{max-width:100%;height:auto}</style></head><body>",
        "<h1>SignalML walk-forward training report</h1>",
        f"<p>{html.escape(metrics.get('summary', ''))}</p>",
        f"<p>Label: the return from the close of t + {label.get('entry_lag_bars', '?')} over {h} bars (a signal of bar t "
        f"trades at the next close); members fit its per-date {html.escape(str(label.get('transform', '')))} of the "
        "market-neutral return; every score is evaluated against the raw return. Default ensemble: "
        f"<b>{html.escape(default)}</b>.</p>",
        "<h2>Out-of-sample metrics over all test windows</h2>",
        _table(_scores(metrics), TABLE_KEYS),
        "<p>rank IC = mean daily Spearman correlation of score and forward return; t-statistics of the mean rank IC "
        "allow for overlapping labels: Hansen–Hodrick (lags up to h − 1), Newey–West (Bartlett, 2h lags), and the "
        "plain t of every h-th date (averaged over the h starting dates). IR = mean / std of the daily series; "
        "top_minus_bottom is the mean quintile spread; turnover the mean daily share of quintile names replaced.</p>",
    ]
    for horizon, section_metrics in sorted(metrics.get("by_horizon", {}).items(), key=lambda item: int(item[0])):
        if int(horizon) == h:
            continue
        parts += [f"<h2>Against the {horizon}-bar forward return</h2>", _table(_scores(section_metrics), TABLE_KEYS)]
    for horizon, tests in sorted(metrics.get("paired", {}).items(), key=lambda item: int(item[0])):
        parts += [
            f"<h2>Paired tests, {horizon}-bar return: ensemble {html.escape(default)} against each score</h2>",
            _table(list(tests.items()), PAIRED_KEYS),
        ]
    quantiles = metrics.get("quantile_returns", {}).get(str(h), {})
    if quantiles:
        rows, keys = _quantile_rows(quantiles)
        parts += [f"<h2>Quantile returns, {h}-bar, less the date's mean (bps)</h2>", _table(rows, keys)]
    spreads = metrics.get("long_short", {})
    if spreads:
        parts += [
            f"<h2>Long-short spread, rebalanced every {spreads.get('rebalance_every_bars')} bars, "
            f"{spreads.get('cost_bps_one_way')} bps one way</h2>",
            _table(list(spreads.get("scores", {}).items()), SPREAD_KEYS),
        ]
    parts += [f"<h2>Per test window: ensemble {html.escape(default)}</h2>", _table(fold_rows, TABLE_KEYS)]
    parts += [_image(name, png) for name, png in images.items()]
    timing = metrics.get("timing", {})
    parts += [
        "<h2>Timing</h2><ul>" + "".join(f"<li>{html.escape(str(k))}: {_fmt(v)} s</li>" for k, v in timing.items()) + "</ul>",
        "</body></html>",
    ]
    return "\n".join(parts)
