"""The training report: ``report.html`` with PNG plots beside it.

Plots: rank IC per test window for every model, ensemble and the baseline
(``ic_per_period.png``); cumulative top-minus-bottom quintile return on
non-overlapping rebalancing dates, every h bars (``cumulative_spread.png``);
mean |SHAP| per feature of the GBMs (``feature_importance.png``).
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import pandas as pd

from training.evaluation import daily_spread

TABLE_KEYS = ("rank_ic", "rank_icir", "ic", "icir", "hit_rate", "top_minus_bottom", "turnover", "rank_ic_t_stat", "n_dates")


def write_report(out_dir: str | os.PathLike[str], metrics: dict, predictions: pd.DataFrame, horizon_bars: int) -> Path:
    """Write the plots and ``report.html`` into ``out_dir``; returns the HTML path."""
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    images = []
    images.append(_plot_ic_per_period(out_dir / "ic_per_period.png", metrics["folds"]))
    images.append(_plot_cumulative_spread(out_dir / "cumulative_spread.png", predictions, horizon_bars))
    if metrics.get("importance"):
        images.append(_plot_importance(out_dir / "feature_importance.png", metrics["importance"]))
    path = out_dir / "report.html"
    path.write_text(_html(metrics, [i for i in images if i is not None]))
    return path


def _label(section: str, name: str) -> str:
    return {"models": name, "ensembles": f"ensemble:{name}", "baseline": f"baseline:{name}"}[section]


def _plot_ic_per_period(path: Path, folds: list[dict]) -> str | None:
    import matplotlib.pyplot as plt

    if not folds:
        return None
    x = pd.to_datetime([f["test_first_date"] for f in folds])
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for section in ("models", "ensembles", "baseline"):
        for name in folds[0].get(section, {}):
            y = [f[section].get(name, {}).get("rank_ic", np.nan) for f in folds]
            style = {"models": "-", "ensembles": "--", "baseline": ":"}[section]
            ax.plot(x, y, style, marker="o", markersize=3, label=_label(section, name))
    ax.axhline(0, color="black", linewidth=0.7)
    ax.set_title("Out-of-sample rank IC per test window")
    ax.set_ylabel("mean daily rank IC")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _plot_cumulative_spread(path: Path, predictions: pd.DataFrame, horizon_bars: int) -> str | None:
    import matplotlib.pyplot as plt

    if predictions.empty:
        return None
    spread = daily_spread(predictions, horizon_bars).sort_index()
    # Every h-th date: h-bar returns that do not overlap, so they add up.
    rebalances = spread.iloc[::horizon_bars].fillna(0.0)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for column in rebalances.columns:
        prefix, name = column.split(".", 1)
        style = {"model": "-", "ensemble": "--", "baseline": ":"}[prefix]
        ax.plot(pd.to_datetime(rebalances.index), rebalances[column].cumsum(), style, label=f"{prefix}:{name}")
    ax.axhline(0, color="black", linewidth=0.7)
    ax.set_title(f"Cumulative top-minus-bottom quintile return (rebalanced every {horizon_bars} bars, no costs)")
    ax.set_ylabel("sum of spreads")
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _plot_importance(path: Path, importance: dict[str, dict[str, float]], top: int = 20) -> str | None:
    import matplotlib.pyplot as plt

    members = list(importance)
    fig, axes = plt.subplots(1, len(members), figsize=(5 * len(members), 6), squeeze=False)
    for ax, member in zip(axes[0], members):
        values = pd.Series(importance[member]).sort_values().tail(top)
        ax.barh(values.index, values.to_numpy())
        ax.set_title(f"{member}: mean |SHAP|")
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}"


def _table(rows: list[tuple[str, dict]]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ("name", *TABLE_KEYS))
    body = "".join(
        "<tr><td>" + html.escape(name) + "</td>" + "".join(f"<td>{_fmt(values.get(k))}</td>" for k in TABLE_KEYS) + "</tr>"
        for name, values in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _html(metrics: dict, images: list[str]) -> str:
    overall = [(_label(s, n), v) for s in ("models", "ensembles", "baseline") for n, v in metrics.get(s, {}).items()]
    default = metrics.get("default_ensemble", "")
    fold_rows = [
        (f"window {f['fold']} ({f['test_first_date']} – {f['test_last_date']})", f["ensembles"].get(default, {}))
        for f in metrics.get("folds", [])
    ]
    timing = metrics.get("timing", {})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>SignalML training report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}</style></head><body>",
        "<h1>SignalML walk-forward training report</h1>",
        f"<p>{html.escape(metrics.get('summary', ''))}</p>",
        "<h2>Out-of-sample metrics over all test windows</h2>",
        _table(overall),
        f"<p>Default ensemble: <b>{html.escape(default)}</b>. IC = mean daily Pearson correlation of score and "
        f"{metrics.get('horizon_bars')}-bar forward return; rank IC = Spearman; IR = mean / std of the daily series; "
        "t-stat uses Hansen–Hodrick errors for overlapping labels; top_minus_bottom is the mean quintile spread of the "
        "forward return; turnover the mean daily share of quintile names replaced.</p>",
        f"<h2>Per test window: ensemble {html.escape(default)}</h2>",
        _table(fold_rows),
        *[f"<h2>{html.escape(name)}</h2><img src='{html.escape(name)}' alt='{html.escape(name)}'>" for name in images],
        "<h2>Timing</h2><ul>" + "".join(f"<li>{html.escape(str(k))}: {_fmt(v)} s</li>" for k, v in timing.items()) + "</ul>",
        "</body></html>",
    ]
    return "\n".join(parts)
