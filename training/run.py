"""``signalml train``: the walk-forward run, evaluation, report and export.

:func:`run_training` reads the bars, builds the dataset once (features
through the streaming engine's code), optionally tunes the GBMs on the
first training window, runs the walk-forward folds (warm-started), fits the
final window (the most recent ``train_period`` labelled bars: the model set
that ``signalml publish`` serves) and writes into ``out_dir``:

* ``metrics.json``: out-of-sample metrics over all test windows of every
  model, ensemble and the baseline (at every horizon, with overlap-
  corrected t-statistics), paired tests of the default ensemble, quantile
  returns, the cost-adjusted long-short spread, per fold, importance,
  timings;
* ``predictions/fold_NNN.parquet``: each fold's test predictions;
* ``report.html``: one self-contained page, its plots embedded (the PNGs
  are written beside it too);
* ``model_set/``: see :mod:`training.export`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from signalml.config import Settings
from signalml.errors import ConfigError, DataError
from stream.bars_file import read_bars
from training.backtest import Backtest, MemberFactory, default_member_factory, run_walk_forward
from training.dataset import Dataset, build_dataset
from training.evaluation import evaluate_backtest, evaluate_by_fold, evaluate_predictions, mean_importance
from training.export import default_member_loader, golden_rows, verify_model_set, write_model_set
from training.hyperopt import tune
from training.jsonio import write_json
from training.report import write_report
from training.splits.walk_forward import WalkForward, WalkForwardFold
from training.window import fit_window

SUMMARY_KEYS = (
    "ic", "rank_ic", "icir", "rank_icir", "hit_rate", "top_minus_bottom", "turnover", "rank_ic_t_stat",
    "rank_ic_t_newey_west", "rank_ic_t_nonoverlapping",
)


def run_training(
    settings: Settings,
    bars_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    member_factory: MemberFactory = default_member_factory,
    member_loader=default_member_loader,
    bars: pd.DataFrame | None = None,
    tested_bars: int | None = None,
) -> dict:
    """Walk-forward train, evaluate, report and export (see the module
    docstring). Returns the metrics written to ``metrics.json``.

    ``bars`` (a frame as ``read_bars`` returns) replaces reading
    ``bars_path``; ``member_factory`` / ``member_loader`` replace
    ``models.factory.build_members`` / ``load_member`` (tests).
    ``tested_bars`` limits the walk-forward to the folds that test the last
    that many labelled bars (:meth:`WalkForward.folds`)."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timing: dict[str, float] = {}

    t0 = time.perf_counter()
    bars = read_bars(bars_path) if bars is None else bars
    timing["read_bars_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dataset = build_dataset(bars, settings, sequence_length=longest_sequence(settings))
    timing["dataset_s"] = time.perf_counter() - t0

    plan = WalkForward.from_settings(settings.training)
    folds = plan_folds(plan, dataset, tested_bars=tested_bars)

    hyperopt_report: dict = {}
    if settings.training.hyperopt_budget_s > 0:
        t0 = time.perf_counter()
        settings, hyperopt_report = tune(dataset, settings, folds[0], member_factory=member_factory)
        timing["hyperopt_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    backtest = run_walk_forward(dataset, settings, folds, member_factory=member_factory, progress=progress)
    timing["walk_forward_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    final_window = plan.final_window(n_labelled_bars(dataset))
    members = member_factory(settings, len(dataset.feature_names), list(dataset.feature_names))
    final = fit_window(
        dataset, members, final_window, settings, previous=backtest.last_fit.members, history=backtest.history
    )
    timing["final_window_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    predictions = backtest.predictions
    metrics = build_metrics(dataset, settings, backtest, predictions, folds, final_window)
    series = metrics.pop("_long_short_series")
    metrics["hyperopt"] = hyperopt_report
    write_predictions(out_dir / "predictions", backtest)
    last = folds[-1]
    manifest = write_model_set(
        out_dir,
        dataset=dataset,
        settings=settings,
        final=final,
        golden=golden_rows(dataset, last.test_stop),
        training_metrics=training_metrics(metrics),
    )
    metrics["model_set"] = {
        "directory": str(out_dir / "model_set"),
        "members": [m["name"] for m in manifest["members"]],
        "ensemble": {k: v for k, v in manifest["ensemble"].items()},
        "training_window": manifest["training_window"],
        "golden_reload_max_abs_diff": verify_model_set(out_dir / "model_set", member_loader=member_loader),
        "fit_reports": final.reports,
    }
    timing["export_s"] = time.perf_counter() - t0
    timing["total_s"] = time.perf_counter() - started
    metrics["timing"] = timing
    metrics["summary"] = summary_line(metrics)
    write_report(out_dir, metrics, predictions, dataset.horizon_bars, long_short_series=series, dates=dataset.dates)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


# ---------------------------------------------------------------- pieces


def longest_sequence(settings: Settings) -> int:
    """The panel must hold the longest T of any enabled sequence member,
    and the engine's configured T (golden sequences use it)."""
    lengths = [settings.features.sequence_length]
    for kind in ("lstm", "tft"):
        member = getattr(settings.models, kind, None)
        if member is not None and member.enabled:
            lengths.append(member.sequence_length)
    return max(lengths)


def n_labelled_bars(dataset: Dataset) -> int:
    """One past the last bar that has a target label."""
    labelled = np.flatnonzero(dataset.labelled)
    if len(labelled) == 0:
        raise DataError("no row has a label: the data is shorter than the label horizon")
    return int(dataset.date_index[labelled[-1]]) + 1


def plan_folds(plan: WalkForward, dataset: Dataset, *, tested_bars: int | None = None) -> list[WalkForwardFold]:
    folds = plan.folds(n_labelled_bars(dataset), tested_bars=tested_bars)
    if not folds:
        raise ConfigError(
            f"training.train_period ({plan.train_period}) + the gap ({plan.gap_period} bars, training.gap_period) leave no "
            f"test window in {n_labelled_bars(dataset)} labelled bars; shorten training.train_period or supply more history"
        )
    return folds


def build_metrics(dataset, settings, backtest: Backtest, predictions, folds, final_window) -> dict:
    h = dataset.horizon_bars
    overall = evaluate_predictions(predictions, h)
    research = evaluate_backtest(
        predictions,
        target_horizon=h,
        default_ensemble=settings.ensemble.method,
        cost_bps=settings.training.trading_cost_bps,
    )
    per_fold = evaluate_by_fold(predictions, h, dataset.dates)
    for entry, result in zip(per_fold, backtest.folds):
        entry["fit_reports"] = result.reports
        entry["ensemble_params"] = result.ensemble_params
        entry["ensemble_sample"] = result.ensemble_sample
        entry["seconds"] = result.seconds
    return {
        **overall,
        **research,
        "default_ensemble": settings.ensemble.method,
        "horizon_bars": h,
        "label": {
            "horizon_bars": h,
            "entry_lag_bars": dataset.entry_lag_bars,
            "transform": settings.training.label_transform,
            "evaluated_against": f"raw return from the close of t + {dataset.entry_lag_bars} over each horizon",
        },
        "folds": per_fold,
        "windows": [f.as_dict() for f in folds],
        "final_window": final_window.as_dict(),
        "importance": mean_importance([f.importance for f in backtest.folds]),
        "dataset": {
            "rows": len(dataset),
            "dates": dataset.n_dates,
            "symbols": int(len(dataset.symbols)),
            "first_date": str(np.datetime_as_string(dataset.dates[0], unit="D")),
            "last_date": str(np.datetime_as_string(dataset.dates[-1], unit="D")),
            "features": list(dataset.feature_names),
            "counts": dataset.counts,
        },
        "test_rows": int(len(predictions)),
    }


def training_metrics(metrics: dict) -> dict[str, dict[str, float]]:
    """The manifest's ``training_metrics``: members by name, ensembles as
    ``ensemble:<method>``, the baseline as ``baseline:<name>``."""
    out = {}
    for name, values in metrics.get("models", {}).items():
        out[name] = {k: values[k] for k in SUMMARY_KEYS}
    for name, values in metrics.get("ensembles", {}).items():
        out[f"ensemble:{name}"] = {k: values[k] for k in SUMMARY_KEYS}
    for name, values in metrics.get("baseline", {}).items():
        out[f"baseline:{name}"] = {k: values[k] for k in SUMMARY_KEYS}
    return out


def write_predictions(directory: Path, backtest: Backtest) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for result in backtest.folds:
        result.predictions.to_parquet(directory / f"fold_{result.fold.index:03d}.parquet", index=False)


def summary_line(metrics: dict) -> str:
    def best(section):
        items = [
            (v["rank_ic"], k)
            for k, v in metrics.get(section, {}).items()
            if v.get("rank_ic") is not None and np.isfinite(v["rank_ic"])
        ]
        return max(items) if items else (float("nan"), "-")

    ens, model, base = best("ensembles"), best("models"), best("baseline")
    default = metrics["default_ensemble"]
    d = metrics.get("ensembles", {}).get(default, {})
    return (
        f"{len(metrics['folds'])} test windows, {metrics['horizon_bars']}-bar label entered at the next close. "
        f"Out-of-sample rank IC: default ensemble {default} {d.get('rank_ic', float('nan')):.4f} "
        f"(t {d.get('rank_ic_t_stat', float('nan')):.2f}, overlap-corrected); best ensemble {ens[1]} {ens[0]:.4f}; "
        f"best model {model[1]} {model[0]:.4f}; baseline {base[1]} {base[0]:.4f}."
    )
