"""Purging and embargo: which samples may train a model tested on a span."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np


@dataclass(frozen=True)
class TimeSpan:
    """Bars [first_bar, last_bar], both inclusive."""

    first_bar: int
    last_bar: int

    def overlaps(self, first_bar: int, last_bar: int) -> bool:
        return first_bar <= self.last_bar and last_bar >= self.first_bar


@dataclass(frozen=True)
class Split:
    """Row indices (int64, ascending) of one train/test split, plus the
    spans of the test windows (label ends and embargo included)."""

    train: np.ndarray
    test: np.ndarray
    test_spans: tuple[TimeSpan, ...] = ()
    name: str = ""


def test_span(time_index: np.ndarray, label_end_index: np.ndarray, embargo_bars: int) -> TimeSpan:
    """The bars a block of test samples depends on: from its first bar to
    its last label end, extended by ``embargo_bars``."""
    return TimeSpan(int(time_index.min()), int(label_end_index.max()) + int(embargo_bars))


def purge_mask(time_index: np.ndarray, label_end_index: np.ndarray, spans: Iterable[TimeSpan]) -> np.ndarray:
    """bool [n]: True where the sample's label window [t, e] touches none
    of ``spans`` (such a sample may train)."""
    time_index = np.asarray(time_index, dtype=np.int64)
    label_end_index = np.asarray(label_end_index, dtype=np.int64)
    if np.any(label_end_index < time_index):
        raise ValueError("every label must end at or after its sample's bar (label_end_index >= time_index)")
    keep = np.ones(len(time_index), dtype=bool)
    for span in spans:
        keep &= ~((time_index <= span.last_bar) & (label_end_index >= span.first_bar))
    return keep


def contiguous_blocks(bars: np.ndarray) -> list[tuple[int, int]]:
    """Sorted distinct bar indices → inclusive (first, last) runs."""
    bars = np.unique(np.asarray(bars, dtype=np.int64))
    if len(bars) == 0:
        return []
    breaks = np.flatnonzero(np.diff(bars) > 1)
    firsts = np.r_[bars[0], bars[breaks + 1]]
    lasts = np.r_[bars[breaks], bars[-1]]
    return list(zip(firsts.tolist(), lasts.tolist()))
