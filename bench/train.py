"""``signalml bench train``: the walk-forward's out-of-sample figures at the
configured horizon and at one bar, and what they cost to compute.

1. The configured run (:func:`training.run.run_training`: walk-forward,
   report, model-set export) at ``training.label_horizon_bars``.
2. The same walk-forward with a 1-bar label (``bench_horizons``; no
   export): members refit for the short horizon, evaluated the same way.
3. Optionally (``naive=True``) the naive loop at the configured horizon:
   each window rebuilds its dataset from the bars and trains fresh members,
   so the speed-up of reuse is measured against accuracy kept.

For every horizon: each member, ensemble and the baseline with its rank IC
and overlap-corrected t-statistics, the paired tests of the default
ensemble, and the acceptance checks (:func:`acceptance`) evaluated from
those figures. Written to ``out_dir/bench.json`` and returned.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from signalml.config import Settings
from signalml.jsonio import jsonable, write_json
from stream.bars_file import read_bars
from training.backtest import MemberFactory, default_member_factory, run_naive_walk_forward, run_walk_forward
from training.dataset import build_dataset
from training.evaluation import evaluate_backtest, evaluate_predictions
from training.export import default_member_loader
from training.run import longest_sequence, plan_folds, run_training
from training.splits.walk_forward import WalkForward

BRIEF_KEYS = (
    "rank_ic", "rank_ic_t_stat", "rank_ic_t_newey_west", "rank_ic_t_nonoverlapping", "rank_icir", "ic",
    "top_minus_bottom", "turnover", "n_dates",
)
MIN_RANK_IC = 0.015
MIN_T_STAT = 2.0


def with_horizon(settings: Settings, horizon_bars: int) -> Settings:
    horizons = tuple(sorted(set(settings.training.horizons) | {int(horizon_bars)}))
    training = settings.training.model_copy(update={"label_horizon_bars": int(horizon_bars), "horizons": horizons})
    return settings.model_copy(update={"training": training})


def brief(metrics: dict, default_ensemble: str, horizon_bars: int) -> dict:
    """The table of one horizon: every score's headline figures, the paired
    tests of the default ensemble, the long-short spread after costs."""
    out = {
        section: {name: {k: values.get(k) for k in BRIEF_KEYS} for name, values in metrics.get(section, {}).items()}
        for section in ("models", "ensembles", "baseline")
    }
    out["default_ensemble"] = default_ensemble
    out["paired"] = metrics.get("paired", {}).get(str(horizon_bars), {})
    out["long_short"] = metrics.get("long_short", {})
    out["acceptance"] = acceptance(out, default_ensemble, horizon_bars)
    return out


def acceptance(table: dict, default_ensemble: str, horizon_bars: int) -> dict:
    """The default ensemble's rank IC ≥ 0.015 with every overlap-corrected
    t ≥ 2, above every member and above the baseline, each read from the
    figures (nothing assumed)."""
    ensemble = table["ensembles"].get(default_ensemble, {})
    rank_ic = ensemble.get("rank_ic", float("nan"))
    t_values = [ensemble.get(k, float("nan")) for k in ("rank_ic_t_stat", "rank_ic_t_newey_west", "rank_ic_t_nonoverlapping")]
    members = {name: v["rank_ic"] for name, v in table["models"].items()}
    baselines = {name: v["rank_ic"] for name, v in table["baseline"].items()}
    return {
        "horizon_bars": int(horizon_bars),
        "rank_ic": rank_ic,
        "rank_ic_at_least": MIN_RANK_IC,
        "rank_ic_met": bool(np.isfinite(rank_ic) and rank_ic >= MIN_RANK_IC),
        "smallest_t_stat": float(np.nanmin(t_values)) if np.isfinite(t_values).any() else float("nan"),
        "t_stat_met": bool(np.all(np.isfinite(t_values)) and min(t_values) >= MIN_T_STAT),
        "above_every_member": bool(members) and all(rank_ic > v for v in members.values()),
        "above_the_baseline": bool(baselines) and all(rank_ic > v for v in baselines.values()),
        "members_at_or_above": sorted(name for name, v in members.items() if not rank_ic > v),
    }


def bench_train(
    settings: Settings,
    bars_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    member_factory: MemberFactory = default_member_factory,
    member_loader=default_member_loader,
    bench_horizons: tuple[int, ...] = (1,),
    naive: bool = False,
) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bars = read_bars(bars_path)
    # Hyper-parameter search is a one-off cost outside what is measured here.
    settings = settings.model_copy(update={"training": settings.training.model_copy(update={"hyperopt_budget_s": 0.0})})
    default = settings.ensemble.method
    target = settings.training.label_horizon_bars

    started = time.perf_counter()
    metrics = run_training(
        settings, bars_path, out_dir, progress=progress, member_factory=member_factory, member_loader=member_loader, bars=bars
    )
    timing = {f"horizon_{target}_s": time.perf_counter() - started, **metrics["timing"]}
    horizons = {str(target): {**_window(metrics), **brief(metrics, default, target)}}

    for horizon in [h for h in bench_horizons if h != target]:
        started = time.perf_counter()
        other = with_horizon(settings, horizon)
        dataset = build_dataset(bars, other, sequence_length=longest_sequence(other))
        folds = plan_folds(WalkForward.from_settings(other.training), dataset)
        backtest = run_walk_forward(dataset, other, folds, member_factory=member_factory, progress=progress)
        predictions = backtest.predictions
        section = {
            **evaluate_predictions(predictions, horizon),
            **evaluate_backtest(predictions, target_horizon=horizon, default_ensemble=default,
                                cost_bps=other.training.trading_cost_bps),
        }
        section.pop("_long_short_series")
        section["folds"] = [{"test_first_date": str(np.datetime_as_string(dataset.dates[f.test_start], unit="D")),
                             "test_last_date": str(np.datetime_as_string(dataset.dates[f.test_stop - 1], unit="D"))}
                            for f in folds]
        horizons[str(horizon)] = {**_window(section), **brief(section, default, horizon)}
        timing[f"horizon_{horizon}_s"] = time.perf_counter() - started

    result = {"data": str(bars_path), "default_ensemble": default, "horizons": horizons, "timing": timing,
              "report": str(out_dir / "report.html")}
    if naive:
        result["naive"] = _naive(bars, settings, metrics, member_factory, progress)
    write_json(out_dir / "bench.json", result)
    return jsonable(result)


def _window(metrics: dict) -> dict:
    folds = metrics.get("folds", [])
    return {
        "test_windows": len(folds),
        "test_first_date": folds[0]["test_first_date"] if folds else None,
        "test_last_date": folds[-1]["test_last_date"] if folds else None,
    }


def _naive(bars, settings: Settings, metrics: dict, member_factory, progress: bool) -> dict:
    """The naive loop's wall time and rank ICs beside the reuse run's."""
    reuse_s = metrics["timing"]["dataset_s"] + metrics["timing"]["walk_forward_s"]
    dataset = build_dataset(bars, settings, sequence_length=longest_sequence(settings))
    folds = plan_folds(WalkForward.from_settings(settings.training), dataset)
    t0 = time.perf_counter()
    naive = run_naive_walk_forward(
        bars, settings, folds, dataset.dates, sequence_length=longest_sequence(settings),
        member_factory=member_factory, progress=progress,
    )
    naive_s = time.perf_counter() - t0
    naive_metrics = evaluate_predictions(naive.predictions, dataset.horizon_bars)

    def rank_ics(section_metrics):
        return {
            section: {name: {k: v[k] for k in ("rank_ic", "rank_icir", "ic", "icir")} for name, v in values.items()}
            for section, values in section_metrics.items()
        }

    return {
        "reuse": {"dataset_s": metrics["timing"]["dataset_s"], "walk_forward_s": metrics["timing"]["walk_forward_s"],
                  "total_s": reuse_s},
        "naive": {"dataset_s": naive.dataset_seconds, "walk_forward_s": naive_s - naive.dataset_seconds, "total_s": naive_s},
        "speedup": naive_s / reuse_s if reuse_s > 0 else float("nan"),
        "reuse_metrics": rank_ics({k: metrics[k] for k in ("models", "ensembles", "baseline")}),
        "naive_metrics": rank_ics(naive_metrics),
    }
