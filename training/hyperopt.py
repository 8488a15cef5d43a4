"""Hyper-parameter search (optuna) with purged k-fold CV as the objective.

Only the first walk-forward training window is searched: every test window
comes after it, so the chosen parameters carry no information from any test
window. The objective is the mean, over the purged folds, of the fold's
validation rank IC (members early-stop on the held-out fold). The search
stops when the time budget (``training.hyperopt_budget_s``, shared equally
by the searched members) is spent; 0 turns it off. The gradient-boosting
members are searched; the deep members keep their configured parameters
(one of their fits costs more than a useful budget).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from signalml.config import Settings
from training.dataset import Dataset
from training.splits.purged_kfold import PurgedKFold
from training.splits.walk_forward import WalkForwardFold
from training.window import member_input

SEARCH_SPACES: dict[str, Callable] = {
    "lightgbm": lambda trial: {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 20, 2000, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
    },
    "xgboost": lambda trial: {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.3, 1.0),
    },
}


def with_model_params(settings: Settings, kind: str, params: dict, *, only: bool = False) -> Settings:
    """A copy of ``settings`` with ``models.<kind>`` updated by ``params``
    (validated); with ``only``, every other member disabled."""
    models = settings.models.model_dump()
    models[kind].update(params)
    if only:
        for other in models:
            models[other]["enabled"] = other == kind
    data = settings.model_dump(exclude={"root"})
    data["models"] = models
    return type(settings).model_validate({**data, "root": settings.root})


def purged_cv_rank_ic(
    dataset: Dataset, settings: Settings, rows: np.ndarray, member_factory, *, label_cutoff_bar: int | None = None
) -> float:
    """Mean validation rank IC of the one member ``member_factory`` builds
    over purged k-fold splits of ``rows``; labels ending at or after
    ``label_cutoff_bar`` (the test window) are blanked."""
    from models.base import mean_rank_ic

    splitter = PurgedKFold.from_settings(settings.training)
    time_index = dataset.date_index[rows]
    # Purge on the longest horizon: a member may learn every label column.
    label_end = dataset.label_end_index_of(max(dataset.horizons))[rows]
    ics = []
    for split in splitter.split(time_index, label_end):
        (member,) = member_factory(settings, len(dataset.feature_names), list(dataset.feature_names))
        train_rows, test_rows = rows[split.train], rows[split.test]
        member.fit(
            member_input(dataset, member, train_rows, label_cutoff_bar=label_cutoff_bar, settings=settings),
            member_input(dataset, member, test_rows, label_cutoff_bar=label_cutoff_bar, settings=settings),
        )
        scores = member.predict(member_input(dataset, member, test_rows, label_cutoff_bar=-1, settings=settings))
        ics.append(mean_rank_ic(scores, dataset.labels[test_rows, dataset.target], dataset.date_index[test_rows]))
    return float(np.mean(ics))


def tune(
    dataset: Dataset,
    settings: Settings,
    window: WalkForwardFold,
    *,
    member_factory,
    budget_s: float | None = None,
) -> tuple[Settings, dict]:
    """Search the enabled GBMs' parameters on ``window``'s training rows;
    returns the settings with the best parameters and a report."""
    import optuna

    budget_s = settings.training.hyperopt_budget_s if budget_s is None else budget_s
    kinds = [k for k in SEARCH_SPACES if getattr(settings.models, k).enabled]
    if budget_s <= 0 or not kinds:
        return settings, {}
    rows = np.arange(len(dataset))[dataset.rows_of_dates(window.train_start, window.train_stop)]
    rows = rows[dataset.labelled[rows] & (dataset.label_end_index[rows] < window.test_start)]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    report = {}
    tuned = settings
    for kind in kinds:
        started = time.perf_counter()

        def objective(trial, kind=kind):
            trial_settings = with_model_params(settings, kind, SEARCH_SPACES[kind](trial), only=True)
            return purged_cv_rank_ic(dataset, trial_settings, rows, member_factory, label_cutoff_bar=window.test_start)

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=settings.training.seed))
        baseline = {k: getattr(getattr(settings.models, kind), k) for k in SEARCH_SPACES[kind](_Recorder())}
        study.enqueue_trial(baseline)  # the configured parameters are trial 0
        study.optimize(objective, timeout=budget_s / len(kinds), n_trials=None, gc_after_trial=True)
        tuned = with_model_params(tuned, kind, study.best_params)
        report[kind] = {
            "best_params": study.best_params,
            "best_cv_rank_ic": study.best_value,
            "configured_cv_rank_ic": study.trials[0].value,
            "trials": len(study.trials),
            "seconds": time.perf_counter() - started,
        }
    return tuned, report


class _Recorder:
    """A stand-in trial that answers each suggestion with its low bound, to
    list a search space's parameter names."""

    def suggest_float(self, name, low, high, **_):
        return low

    def suggest_int(self, name, low, high, **_):
        return low
