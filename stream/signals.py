"""Signals of one cross-section: the ensemble score, its percentile rank, the
members' scores, the model set that produced them."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from signalml.contracts import Signal


def percentile_ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each score within the cross-section divided by its size, in
    (0, 1]; ties share their average rank; a NaN score gets NaN."""
    scores = np.asarray(scores, dtype=np.float64)
    ranks = np.full(len(scores), np.nan)
    valid = np.isfinite(scores)
    if valid.any():
        ranks[valid] = rankdata(scores[valid], method="average") / valid.sum()
    return ranks


def build_signals(
    ts: int,
    symbols: list[str],
    scores: np.ndarray,
    member_scores: dict[str, np.ndarray],
    model_set: str,
    horizon_bars: int,
) -> list[Signal]:
    """One :class:`Signal` per symbol, in the given order."""
    ranks = percentile_ranks(scores)
    members = {name: np.asarray(values, dtype=np.float64).tolist() for name, values in member_scores.items()}
    size = len(symbols)
    return [
        Signal(
            ts=ts,
            symbol=symbol,
            score=float(scores[i]),
            rank=float(ranks[i]),
            members={name: values[i] for name, values in members.items()},
            model_set=model_set,
            cross_section_size=size,
            horizon_bars=horizon_bars,
        )
        for i, symbol in enumerate(symbols)
    ]
