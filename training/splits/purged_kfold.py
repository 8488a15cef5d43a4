"""Purged k-fold cross-validation with an embargo (López de Prado, AFML ch. 7).

The distinct bars are cut into ``n_splits`` contiguous groups; each group
in turn is the test set. Training keeps every other sample whose label
window [t, e] touches neither the test bars up to their last label end nor
the ``embargo_bars`` bars after it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from training.splits.purge import Split, purge_mask, test_span


class PurgedKFold:
    def __init__(self, n_splits: int = 5, embargo_bars: int = 0):
        if n_splits < 2:
            raise ValueError(f"n_splits must be >= 2, got {n_splits}")
        if embargo_bars < 0:
            raise ValueError(f"embargo_bars must be >= 0, got {embargo_bars}")
        self.n_splits, self.embargo_bars = int(n_splits), int(embargo_bars)

    @classmethod
    def from_settings(cls, training) -> "PurgedKFold":
        return cls(training.cv_folds, training.embargo)

    def split(self, time_index: np.ndarray, label_end_index: np.ndarray) -> Iterator[Split]:
        """One :class:`Split` per fold, in time order of the test groups."""
        time_index = np.asarray(time_index, dtype=np.int64)
        label_end_index = np.asarray(label_end_index, dtype=np.int64)
        bars = np.unique(time_index)
        if len(bars) < self.n_splits:
            raise ValueError(f"{len(bars)} distinct bars cannot make {self.n_splits} folds")
        for k, group in enumerate(np.array_split(bars, self.n_splits)):
            in_test = (time_index >= group[0]) & (time_index <= group[-1])
            test = np.flatnonzero(in_test)
            span = test_span(time_index[test], label_end_index[test], self.embargo_bars)
            train = np.flatnonzero(~in_test & purge_mask(time_index, label_end_index, [span]))
            yield Split(train=train, test=test, test_spans=(span,), name=f"fold_{k}")
