"""Signals of one cross-section: the ensemble score, its percentile rank, the
members' scores, the model set that produced them."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from signalml.contracts import CrossSectionRecord, Signal


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


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def build_record(ts: int, role: str, symbols: list[str], closes: list[float], signals: list[Signal],
                 model_set: str = "", horizon_bars: int = 0) -> CrossSectionRecord:
    """The cross-section record of bar time ``ts``: every bar's close and,
    aligned with them, the scores of the symbols that have a signal (None
    for the others; NaN scores too, since JSON has no NaN)."""
    by_symbol = {signal.symbol: signal for signal in signals}
    names = sorted({name for signal in signals for name in signal.members})
    score: list[float | None] = []
    members: dict[str, list[float | None]] = {name: [] for name in names}
    for symbol in symbols:
        signal = by_symbol.get(symbol)
        score.append(None if signal is None else _finite(signal.score))
        for name in names:
            members[name].append(None if signal is None or name not in signal.members
                                 else _finite(signal.members[name]))
    return CrossSectionRecord(ts=ts, role=role, model_set=model_set if signals else "",
                              horizon_bars=horizon_bars if signals else 0, symbols=list(symbols),
                              closes=[float(c) for c in closes], score=score, members=members)
