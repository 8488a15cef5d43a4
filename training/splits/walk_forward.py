"""Walk-forward splits with an explicit leakage gap (as Qlib's ``RollingGen``).

Fold k tests the bars ``[test_start, test_stop)`` with
``test_start = train_period + gap_period + k * retrain_frequency`` and
trains on the ``train_period`` bars that end ``gap_period`` bars before it
(``sliding``), or on every bar from 0 to there (``expanding``). The gap
follows the label's end: a training label of the row at bar ``t`` reads
the close of ``e = t + span`` (span = entry lag + horizon), so
``e < test_start`` is required, and ``train_stop - 1 + span < train_stop +
gap`` holds exactly when ``gap >= span``; by default the gap is the span.
Folds are plain data, so a run can be described, logged and replayed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from signalml.errors import ConfigError
from training.splits.purge import Split, TimeSpan, purge_mask


@dataclass(frozen=True)
class WalkForwardFold:
    """Bar indices, each range [start, stop)."""

    index: int
    train_start: int
    train_stop: int
    test_start: int
    test_stop: int

    def as_dict(self) -> dict:
        return asdict(self)

    def validation_start(self, validation_bars: int) -> int:
        """First bar of the training window's validation tail: its last
        ``validation_bars`` bars (never the whole window)."""
        n_valid = max(1, min(int(validation_bars), self.train_stop - self.train_start - 1))
        return self.train_stop - n_valid


class WalkForward:
    def __init__(
        self,
        *,
        train_period: int,
        test_period: int,
        retrain_frequency: int,
        gap_period: int,
        label_span_bars: int,
        window: Literal["sliding", "expanding"] = "expanding",
    ):
        if window not in ("sliding", "expanding"):
            raise ConfigError(f"training.window: {window!r} is not allowed; allowed values: 'sliding', 'expanding'")
        for setting, value, least in (
            ("training.train_period", train_period, 1),
            ("training.test_period", test_period, 1),
            ("training.retrain_frequency", retrain_frequency, 1),
            ("training.gap_period", gap_period, 0),
        ):
            if value < least:
                raise ConfigError(f"{setting}: must be >= {least} (got {value})")
        if gap_period < label_span_bars:
            raise ConfigError(
                f"training.gap_period: {gap_period} bars is shorter than the label's span "
                f"({label_span_bars} bars: entry lag + horizon); training labels would reach into the test window"
            )
        self.train_period, self.test_period = int(train_period), int(test_period)
        self.retrain_frequency, self.gap_period = int(retrain_frequency), int(gap_period)
        self.label_span_bars, self.window = int(label_span_bars), window

    @classmethod
    def from_settings(cls, training) -> "WalkForward":
        return cls(
            train_period=training.train_period,
            test_period=training.test_period,
            retrain_frequency=training.retrain_frequency,
            gap_period=training.gap_bars,
            label_span_bars=training.target_label_span_bars,
            window=training.window,
        )

    def folds(self, n_bars: int, *, tested_bars: int | None = None) -> list[WalkForwardFold]:
        """Every fold whose test window starts before ``n_bars``; the last
        test window is cut at ``n_bars``.

        With ``tested_bars``, the test windows start at ``n_bars -
        tested_bars`` (or at the first bar a training window allows, if
        later) instead: the folds that test the last ``tested_bars`` bars
        and nothing before them. A retrain judged on those bars fits only
        these windows."""
        folds = []
        test_start = self.train_period + self.gap_period
        if tested_bars is not None:
            test_start = max(test_start, n_bars - int(tested_bars))
        while test_start < n_bars:
            train_stop = test_start - self.gap_period
            train_start = 0 if self.window == "expanding" else train_stop - self.train_period
            test_stop = min(test_start + self.test_period, n_bars)
            folds.append(WalkForwardFold(len(folds), train_start, train_stop, test_start, test_stop))
            test_start += self.retrain_frequency
        return folds

    def final_window(self, n_bars: int) -> WalkForwardFold:
        """The training window that ends at the last labelled bar: what the
        model set to serve is fit on. ``n_bars`` counts the bars whose
        target label exists. Its test window is empty."""
        train_stop = n_bars
        train_start = 0 if self.window == "expanding" else max(0, train_stop - self.train_period)
        return WalkForwardFold(-1, train_start, train_stop, n_bars + self.gap_period, n_bars + self.gap_period)

    def split(self, time_index: np.ndarray, label_end_index: np.ndarray, n_bars: int | None = None) -> list[Split]:
        """Row indices of every fold, training rows purged by label end."""
        time_index = np.asarray(time_index, dtype=np.int64)
        label_end_index = np.asarray(label_end_index, dtype=np.int64)
        n_bars = int(time_index.max()) + 1 if n_bars is None else n_bars
        splits = []
        for fold in self.folds(n_bars):
            train, test = fold_rows(time_index, label_end_index, fold)
            span = TimeSpan(fold.test_start, fold.test_stop - 1)
            splits.append(Split(train=train, test=test, test_spans=(span,), name=f"fold_{fold.index}"))
        return splits


def fold_rows(time_index: np.ndarray, label_end_index: np.ndarray, fold: WalkForwardFold) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices of ``fold``: training rows in the training
    window whose label ends before the test window starts."""
    in_train = (time_index >= fold.train_start) & (time_index < fold.train_stop)
    in_test = (time_index >= fold.test_start) & (time_index < fold.test_stop)
    clean = purge_mask(time_index, label_end_index, [TimeSpan(fold.test_start, max(fold.test_stop - 1, fold.test_start))])
    return np.flatnonzero(in_train & clean), np.flatnonzero(in_test)
