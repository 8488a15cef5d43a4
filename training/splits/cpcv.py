"""Combinatorial purged cross-validation (López de Prado, AFML ch. 12).

The distinct bars are cut into ``n_groups`` contiguous groups; every choice
of ``n_test_groups`` of them is one split's test set, purged and embargoed
around each contiguous test block. The test predictions recombine into
``C(N-1, k-1)`` full backtest paths (:meth:`paths`).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations
from math import comb

import numpy as np

from training.splits.purge import Split, TimeSpan, purge_mask


class CombinatorialPurgedCV:
    def __init__(self, n_groups: int = 6, n_test_groups: int = 2, embargo_bars: int = 0):
        if not 1 <= n_test_groups < n_groups:
            raise ValueError(f"need 1 <= n_test_groups < n_groups, got {n_test_groups} and {n_groups}")
        if embargo_bars < 0:
            raise ValueError(f"embargo_bars must be >= 0, got {embargo_bars}")
        self.n_groups, self.n_test_groups, self.embargo_bars = int(n_groups), int(n_test_groups), int(embargo_bars)

    @property
    def n_splits(self) -> int:
        return comb(self.n_groups, self.n_test_groups)

    @property
    def n_paths(self) -> int:
        return comb(self.n_groups - 1, self.n_test_groups - 1)

    def test_group_sets(self) -> list[tuple[int, ...]]:
        return list(combinations(range(self.n_groups), self.n_test_groups))

    def split(self, time_index: np.ndarray, label_end_index: np.ndarray) -> Iterator[Split]:
        time_index = np.asarray(time_index, dtype=np.int64)
        label_end_index = np.asarray(label_end_index, dtype=np.int64)
        bars = np.unique(time_index)
        if len(bars) < self.n_groups:
            raise ValueError(f"{len(bars)} distinct bars cannot make {self.n_groups} groups")
        groups = np.array_split(bars, self.n_groups)
        for test_groups in self.test_group_sets():
            test_bars = np.concatenate([groups[g] for g in test_groups])
            in_test = np.isin(time_index, test_bars)
            spans = []
            for first, last in _group_blocks(groups, test_groups):
                block = in_test & (time_index >= first) & (time_index <= last)
                spans.append(TimeSpan(first, int(label_end_index[block].max()) + self.embargo_bars))
            train = np.flatnonzero(~in_test & purge_mask(time_index, label_end_index, spans))
            name = "groups_" + "_".join(map(str, test_groups))
            yield Split(train=train, test=np.flatnonzero(in_test), test_spans=tuple(spans), name=name)

    def paths(self) -> list[list[int]]:
        """``paths[p][g]``: the split (index into :meth:`split`'s order) whose
        test predictions of group ``g`` belong to backtest path ``p``."""
        seen = [0] * self.n_groups
        paths = [[-1] * self.n_groups for _ in range(self.n_paths)]
        for split_index, test_groups in enumerate(self.test_group_sets()):
            for g in test_groups:
                paths[seen[g]][g] = split_index
                seen[g] += 1
        return paths


def _group_blocks(groups: list[np.ndarray], test_groups: tuple[int, ...]) -> list[tuple[int, int]]:
    """Adjacent test groups merge into one contiguous block of bars."""
    blocks: list[tuple[int, int]] = []
    for g in sorted(test_groups):
        first, last = int(groups[g][0]), int(groups[g][-1])
        if blocks and g - 1 in test_groups:
            blocks[-1] = (blocks[-1][0], last)
        else:
            blocks.append((first, last))
    return blocks

