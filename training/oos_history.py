"""Accumulated out-of-sample member scores: what ensembles are fit on.

One validation window is a thin and noisy basis for choosing how to
combine members (its IC hardly predicts the next test window's). The walk-
forward instead keeps every test window's member scores: each was made by
a model that had not seen those rows. When a window's ensembles are fit,
they read all of them whose labels have ended before that window's test
starts (a later label would be known only after trading had begun), plus
the window's own validation rows for the bar times no earlier test window
covers (the start of the history, before the first test).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class EnsembleSample:
    """Rows an ensemble is fit on: member scores [n, M], labels [n] (the
    fit target), bar index [n], and where each row came from."""

    scores: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    rows: np.ndarray
    from_history: int  # rows taken from earlier test windows
    from_validation: int  # rows taken from this window's validation tail

    def describe(self) -> dict:
        dates = np.unique(self.groups)
        return {
            "rows": int(len(self.rows)),
            "bar_times": int(len(dates)),
            "first_bar": int(dates[0]) if len(dates) else None,
            "last_bar": int(dates[-1]) if len(dates) else None,
            "rows_from_test_windows": int(self.from_history),
            "rows_from_validation": int(self.from_validation),
        }


@dataclass
class OutOfSampleHistory:
    """Member scores of (bar, symbol) samples, each made before its model
    saw them. Samples are keyed by bar index and symbol name, so a history
    serves any dataset on the same bar clock (the naive loop rebuilds one
    per window)."""

    member_names: tuple[str, ...] = ()
    bars: list[np.ndarray] = field(default_factory=list)
    symbols: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)

    def add(self, dataset, member_names, rows: np.ndarray, scores: np.ndarray) -> None:
        """Append one test window's scores of ``dataset``'s ``rows``
        ([len(rows), M], columns in ``member_names`` order)."""
        self._check(member_names)
        self.member_names = tuple(member_names)
        rows = np.asarray(rows, dtype=np.int64)
        self.bars.append(dataset.date_index[rows])
        self.symbols.append(dataset.symbols[dataset.symbol_index[rows]].astype(str))
        self.scores.append(np.asarray(scores, dtype=np.float64))

    def _check(self, member_names) -> None:
        if self.member_names and tuple(member_names) != self.member_names:
            raise ValueError(f"members {list(member_names)} differ from the history's {list(self.member_names)}")

    def matured(self, dataset, before_bar: int, n_members: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows of ``dataset``, scores) whose target label ended before
        ``before_bar``; where test windows overlap, the later window's
        score of a sample wins."""
        if not self.bars:
            width = len(self.member_names) if n_members is None else n_members
            return np.zeros(0, dtype=np.int64), np.zeros((0, width))
        keys = pd.MultiIndex.from_arrays([np.concatenate(self.bars), np.concatenate(self.symbols)])
        scores = np.vstack(self.scores)
        latest = ~keys.duplicated(keep="last")
        keys, scores = keys[latest], scores[latest]
        lookup = pd.MultiIndex.from_arrays([dataset.date_index, dataset.symbols[dataset.symbol_index].astype(str)])
        rows = lookup.get_indexer(keys)
        found = rows >= 0
        rows, scores = rows[found].astype(np.int64), scores[found]
        ripe = dataset.label_end_index[rows] < before_bar
        return rows[ripe], scores[ripe]

    def ensemble_sample(
        self,
        dataset,
        test_start: int,
        valid_rows: np.ndarray,
        valid_scores: np.ndarray,
        member_names,
    ) -> EnsembleSample:
        """The rows a window starting its test at bar ``test_start`` fits
        its ensembles on (see the module docstring)."""
        self._check(member_names)
        labelled = dataset.labelled
        rows, scores = self.matured(dataset, test_start, len(tuple(member_names)))
        known = labelled[rows]
        rows, scores = rows[known], scores[known]
        covered = np.unique(dataset.date_index[rows])
        valid_rows = np.asarray(valid_rows, dtype=np.int64)
        fresh = ~np.isin(dataset.date_index[valid_rows], covered)
        fresh &= labelled[valid_rows] & (dataset.label_end_index[valid_rows] < test_start)
        all_rows = np.concatenate([rows, valid_rows[fresh]])
        all_scores = np.vstack([scores, np.asarray(valid_scores, dtype=np.float64)[fresh]])
        order = np.argsort(all_rows, kind="stable")
        all_rows, all_scores = all_rows[order], all_scores[order]
        return EnsembleSample(
            scores=all_scores,
            labels=dataset.labels[all_rows, dataset.target],
            groups=dataset.date_index[all_rows],
            rows=all_rows,
            from_history=int(len(rows)),
            from_validation=int(fresh.sum()),
        )
