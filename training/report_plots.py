"""The training report's plots, as PNG bytes (matplotlib, Agg backend).

* rank IC per test window of every model, ensemble and the baseline;
* cumulative long-short spread, gross and after costs, on the rebalance
  dates (every h bars, so the held returns add up);
* mean forward return per score quintile, less the date's mean;
* IC decay: rank IC against the forward return of each horizon;
* mean |SHAP| per feature of the tabular members.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

STYLE = {"models": "-", "ensembles": "--", "baseline": ":"}


def _section(label: str) -> str:
    return "ensembles" if label.startswith("ensemble:") else "baseline" if label.startswith("baseline:") else "models"


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _figure(width: float = 10, height: float = 4.5):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def ic_per_period(folds: list[dict]) -> bytes | None:
    if not folds:
        return None
    fig, ax = _figure()
    x = pd.to_datetime([f["test_first_date"] for f in folds])
    for section in ("models", "ensembles", "baseline"):
        for name in folds[0].get(section, {}):
            y = [f[section].get(name, {}).get("rank_ic", np.nan) for f in folds]
            label = {"models": name, "ensembles": f"ensemble:{name}", "baseline": f"baseline:{name}"}[section]
            ax.plot(x, y, STYLE[section], marker="o", markersize=3, label=label)
    ax.axhline(0, color="black", linewidth=0.7)
    ax.set_title("Out-of-sample rank IC per test window")
    ax.set_ylabel("mean daily rank IC")
    ax.legend(fontsize=7, ncol=3)
    return _png(fig)


def cumulative_spread(series: dict[str, pd.DataFrame], dates: np.ndarray, horizon_bars: int, cost_bps: float,
                      highlight: tuple[str, ...]) -> bytes | None:
    """Gross (thin) and net (thick) cumulative spread of the ``highlight``
    scores; the other scores net only, faint."""
    if not series:
        return None
    fig, ax = _figure()
    for label, frame in series.items():
        if frame.empty:
            continue
        x = pd.to_datetime(dates[frame.index.to_numpy(dtype=np.int64)])
        style = STYLE[_section(label)]
        if label in highlight:
            line = ax.plot(x, frame["net"].fillna(0.0).cumsum(), style, linewidth=2.0, label=f"{label} net")[0]
            ax.plot(x, frame["gross"].fillna(0.0).cumsum(), style, linewidth=0.8, color=line.get_color(),
                    label=f"{label} gross")
        else:
            ax.plot(x, frame["net"].fillna(0.0).cumsum(), style, linewidth=0.8, alpha=0.5, label=f"{label} net")
    ax.axhline(0, color="black", linewidth=0.7)
    ax.set_title(f"Cumulative top-minus-bottom quintile return, rebalanced every {horizon_bars} bars, "
                 f"net of {cost_bps:g} bps one way")
    ax.set_ylabel("sum of spreads")
    ax.legend(fontsize=7, ncol=3)
    return _png(fig)


def quantile_bars(quantiles: dict[str, dict], labels: tuple[str, ...], horizon_bars: int) -> bytes | None:
    shown = [label for label in labels if label in quantiles]
    if not shown:
        return None
    fig, ax = _figure()
    n = len(shown)
    width = 0.8 / n
    for i, label in enumerate(shown):
        values = np.asarray(quantiles[label]["excess"], dtype=np.float64) * 1e4
        ax.bar(np.arange(len(values)) + (i - (n - 1) / 2) * width, values, width, label=label)
    ax.axhline(0, color="black", linewidth=0.7)
    ax.set_xticks(np.arange(len(values)), [f"Q{q + 1}" for q in range(len(values))])
    ax.set_xlabel("score quintile (Q1 lowest)")
    ax.set_ylabel(f"mean {horizon_bars}-bar return less the date's mean (bps)")
    ax.set_title("Quantile returns")
    ax.legend(fontsize=7, ncol=2)
    return _png(fig)


def ic_decay(decay: dict[str, dict[str, float]]) -> bytes | None:
    if not decay:
        return None
    fig, ax = _figure()
    for label, values in decay.items():
        horizons = sorted(values, key=int)
        ax.plot([int(h) for h in horizons], [values[h] for h in horizons], STYLE[_section(label)], marker="o",
                markersize=3, label=label)
    ax.axhline(0, color="black", linewidth=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("horizon (bars), entered at the next close")
    ax.set_ylabel("mean daily rank IC")
    ax.set_title("IC decay over horizons")
    ax.legend(fontsize=7, ncol=3)
    return _png(fig)


def importance(values: dict[str, dict[str, float]], top: int = 20) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    members = list(values)
    if not members:
        return None
    fig, axes = plt.subplots(1, len(members), figsize=(5 * len(members), 6), squeeze=False)
    for ax, member in zip(axes[0], members):
        series = pd.Series(values[member]).sort_values().tail(top)
        ax.barh(series.index, series.to_numpy())
        ax.set_title(f"{member}: mean |SHAP|")
        ax.tick_params(axis="y", labelsize=7)
    return _png(fig)
