"""``signalml train --validation cpcv``: combinatorial purged cross-validation
of every enabled member over the whole labelled history, beside the
walk-forward.

The labelled bars are cut into ``n_groups`` groups; each choice of
``n_test_groups`` of them is one split (:class:`CombinatorialPurgedCV`,
purged on the longest label horizon, embargoed by ``training.embargo``).
Fresh members fit on each split's training rows and score its test rows;
their test predictions recombine into ``C(n_groups - 1, n_test_groups - 1)``
full backtest paths, each covering every group once. Where the walk-forward
gives one out-of-sample history, this gives a distribution of them: the
rank IC of every path, its mean, spread and worst.

Members early-stop on the split's test rows, as the hyper-parameter
search's purged folds do: the figures rank members and show their spread
across histories; the walk-forward's are the unbiased out-of-sample ones.
"""

from __future__ import annotations

import numpy as np

from models.base import mean_rank_ic
from signalml.config import Settings
from training.dataset import Dataset
from training.splits.cpcv import CombinatorialPurgedCV
from training.window import member_input


def cpcv_validation(dataset: Dataset, settings: Settings, member_factory, *, n_groups: int,
                    n_test_groups: int) -> dict:
    """Per member: the rank IC (scores against raw forward returns at the
    target horizon, mean over dates) of every split's test rows and of every
    backtest path, with the paths' mean, standard deviation and minimum."""
    cv = CombinatorialPurgedCV(n_groups, n_test_groups, settings.training.embargo)
    rows = np.flatnonzero(dataset.labelled)
    time_index = dataset.date_index[rows]
    label_end = dataset.label_end_index_of(max(dataset.horizons))[rows]
    returns = dataset.returns[:, dataset.target]
    bars = np.unique(time_index)
    group_of_bar = np.zeros(int(bars[-1]) + 1, dtype=np.int64)
    for g, group in enumerate(np.array_split(bars, cv.n_groups)):
        group_of_bar[group] = g
    scores: dict[str, list[np.ndarray]] = {}  # member -> per split, the score of every labelled row (NaN: not tested)
    for split in cv.split(time_index, label_end):
        train_rows, test_rows = rows[split.train], rows[split.test]
        for member in member_factory(settings, len(dataset.feature_names), list(dataset.feature_names)):
            member.fit(member_input(dataset, member, train_rows, settings=settings),
                       member_input(dataset, member, test_rows, settings=settings))
            scored = np.full(len(rows), np.nan)
            scored[split.test] = member.predict(member_input(dataset, member, test_rows, settings=settings))
            scores.setdefault(member.name, []).append(scored)
    row_group = group_of_bar[time_index]
    out = {}
    for name, per_split in scores.items():
        split_ics = [mean_rank_ic(s[np.isfinite(s)], returns[rows][np.isfinite(s)], time_index[np.isfinite(s)])
                     for s in per_split]
        path_ics = []
        for path in cv.paths():
            path_scores = np.stack([per_split[split_index] for split_index in path])[row_group, np.arange(len(rows))]
            path_ics.append(mean_rank_ic(path_scores, returns[rows], time_index))
        out[name] = {
            "split_rank_ic": split_ics,
            "path_rank_ic": path_ics,
            "path_rank_ic_mean": float(np.mean(path_ics)),
            "path_rank_ic_std": float(np.std(path_ics, ddof=1)) if len(path_ics) > 1 else 0.0,
            "path_rank_ic_min": float(np.min(path_ics)),
        }
    return {
        "n_groups": cv.n_groups,
        "n_test_groups": cv.n_test_groups,
        "embargo_bars": cv.embargo_bars,
        "n_splits": cv.n_splits,
        "n_paths": cv.n_paths,
        "members": out,
    }
