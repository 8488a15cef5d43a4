"""``signalml bench train``: the walk-forward run against the naive loop.

Both run the same folds with the same settings in the same process:

* reuse (what :func:`training.run.run_training` does): features computed
  once, each window a slice of one dataset by row index, members
  warm-started from the previous window (as far as each member supports
  it: see its ``warm_start_from``);
* naive: each window rebuilds its dataset from the bars (features replayed
  from the start of history, labels, sequence panel) and trains fresh
  members.

Returned (and written to ``out_dir/bench.json``): wall times in seconds,
the ratio naive / reuse, and the out-of-sample rank IC / rank ICIR of every
model, ensemble and the baseline for both, so the speed-up is seen not to
cost accuracy.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from signalml.config import Settings
from stream.bars_file import read_bars
from training.backtest import MemberFactory, default_member_factory, run_naive_walk_forward
from training.dataset import build_dataset
from training.evaluation import evaluate_predictions
from training.export import default_member_loader
from training.jsonio import to_jsonable, write_json
from training.run import longest_sequence, plan_folds, run_training
from training.splits.walk_forward import WalkForward


def bench_train(
    settings: Settings,
    bars_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    member_factory: MemberFactory = default_member_factory,
    member_loader=default_member_loader,
) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bars = read_bars(bars_path)

    # Hyper-parameter search is the same one-off cost in both; leave it out.
    settings = settings.model_copy(update={"training": settings.training.model_copy(update={"hyperopt_budget_s": 0.0})})
    metrics = run_training(
        settings, bars_path, out_dir, progress=progress, member_factory=member_factory, member_loader=member_loader, bars=bars
    )
    timing = metrics["timing"]
    reuse_s = timing["dataset_s"] + timing["walk_forward_s"]

    dataset = build_dataset(bars, settings, sequence_length=longest_sequence(settings))
    folds = plan_folds(WalkForward.from_settings(settings.training), dataset)
    t0 = time.perf_counter()
    naive = run_naive_walk_forward(
        bars,
        settings,
        folds,
        dataset.dates,
        sequence_length=longest_sequence(settings),
        member_factory=member_factory,
        progress=progress,
    )
    naive_s = time.perf_counter() - t0
    naive_metrics = evaluate_predictions(naive.predictions, dataset.horizon_bars)

    def brief(section_metrics):
        return {
            section: {name: {k: v[k] for k in ("rank_ic", "rank_icir", "ic", "icir")} for name, v in values.items()}
            for section, values in section_metrics.items()
        }

    result = {
        "folds": len(folds),
        "reuse": {
            "dataset_s": timing["dataset_s"],
            "walk_forward_s": timing["walk_forward_s"],
            "total_s": reuse_s,
            "run_training_total_s": timing["total_s"],
        },
        "naive": {"dataset_s": naive.dataset_seconds, "walk_forward_s": naive_s - naive.dataset_seconds, "total_s": naive_s},
        "speedup": naive_s / reuse_s if reuse_s > 0 else float("nan"),
        "reuse_metrics": brief({k: metrics[k] for k in ("models", "ensembles", "baseline")}),
        "naive_metrics": brief(naive_metrics),
        "per_fold_fit_s": {
            "reuse": [{m: r.get("fit_s") for m, r in f["fit_reports"].items()} for f in metrics["folds"]],
            "naive": [{m: r.get("fit_s") for m, r in f.reports.items()} for f in naive.folds],
        },
    }
    write_json(out_dir / "bench.json", result)
    return to_jsonable(result)
