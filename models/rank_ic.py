"""Mean per-date rank IC of many score vectors against one fixed target.

Early stopping scores the validation set after every boosting round; a
pandas group-by there costs more than the round itself. :class:`RankIC`
ranks the target once and each score vector with one ``lexsort``, ties
averaged (a shallow ensemble of trees gives many equal scores), then sums
per date with ``reduceat``. The result equals
:func:`models.base.mean_rank_ic` (a test holds them together).
"""

from __future__ import annotations

import numpy as np


class RankIC:
    """``RankIC(target, groups)(score)``: mean over dates of the Spearman
    correlation of ``score`` and ``target`` within each date.

    Rows whose target is not finite are left out; dates with fewer than
    two rows are left out; a date where the score (or the target) is
    constant counts as IC 0.
    """

    def __init__(self, target: np.ndarray, groups: np.ndarray):
        target = np.asarray(target, dtype=np.float64)
        groups = np.asarray(groups)
        keep = np.isfinite(target)
        order = np.argsort(groups[keep], kind="stable")
        self.rows = np.flatnonzero(keep)[order]
        codes = np.unique(groups[self.rows], return_inverse=True)[1].astype(np.int64)
        self.codes = codes
        self.starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        self.sizes = np.diff(np.r_[self.starts, len(codes)]).astype(np.float64)
        self.target_rank = self._ranks(target[self.rows])
        self.target_centred = self.target_rank - self._per_row(self._date_sum(self.target_rank) / self.sizes)
        self.target_ss = self._date_sum(self.target_centred**2)
        self.informative = self.sizes >= 2

    def __call__(self, score: np.ndarray) -> float:
        score = np.asarray(score, dtype=np.float64)[self.rows]
        if len(score) == 0 or not self.informative.any():
            return 0.0
        rank = self._ranks(np.nan_to_num(score, nan=-np.inf))
        centred = rank - self._per_row(self._date_sum(rank) / self.sizes)
        covariance = self._date_sum(centred * self.target_centred)
        denominator = np.sqrt(self._date_sum(centred**2) * self.target_ss)
        # Ranks are multiples of 1/2: a relative floor tells constant from rounding.
        varies = denominator > 1e-9 * self.sizes**2
        ic = np.where(varies, covariance / np.where(varies, denominator, 1.0), 0.0)
        return float(ic[self.informative].mean())

    def _date_sum(self, values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, self.starts) if len(values) else np.zeros(0)

    def _per_row(self, per_date: np.ndarray) -> np.ndarray:
        return per_date[self.codes]

    def _ranks(self, values: np.ndarray) -> np.ndarray:
        """1-based average-tie ranks of ``values`` within each date."""
        order = np.lexsort((values, self.codes))
        codes, ordered = self.codes[order], values[order]
        new = np.r_[True, (codes[1:] != codes[:-1]) | (ordered[1:] != ordered[:-1])]
        starts = np.flatnonzero(new)
        ends = np.r_[starts[1:], len(values)] - 1
        first_of_date = self.starts[codes]
        tie_rank = (starts + ends) / 2.0 - first_of_date[starts] + 1.0
        ranks = np.empty(len(values))
        ranks[order] = tie_rank[np.cumsum(new) - 1]
        return ranks
