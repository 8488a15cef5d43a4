"""Signals of one cross-section: the ensemble score, its percentile rank, the
members' scores, the model set that produced them.

A cross-section's signals are kept as columns (:class:`CrossSectionSignals`):
the engine encodes all of them in one pass over the columns
(:meth:`CrossSectionSignals.messages`), and the :class:`Signal` objects are
built only where something reads them one by one (the query API, ``predict``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from signalml.contracts import CrossSectionRecord, Signal, encode


def percentile_ranks(scores: np.ndarray) -> np.ndarray:
    """Rank of each score within the cross-section divided by its size, in
    (0, 1]; ties share their average rank; a NaN score gets NaN."""
    scores = np.asarray(scores, dtype=np.float64)
    ranks = np.full(len(scores), np.nan)
    valid = np.isfinite(scores)
    if valid.any():
        ranks[valid] = rankdata(scores[valid], method="average") / valid.sum()
    return ranks


class CrossSectionSignals(Sequence[Signal]):
    """The signals of one cross-section as columns; a sequence of
    :class:`Signal`, one per symbol in the given order, built on first read."""

    def __init__(self, ts: int, symbols: list[str], scores: np.ndarray, ranks: np.ndarray,
                 members: dict[str, np.ndarray], model_set: str, horizon_bars: int):
        self.ts = int(ts)
        self.symbols = list(symbols)
        self.scores = np.asarray(scores, dtype=np.float64)
        self.ranks = np.asarray(ranks, dtype=np.float64)
        self.members = {name: np.asarray(values, dtype=np.float64) for name, values in members.items()}
        self.model_set = model_set
        self.horizon_bars = int(horizon_bars)
        self._signals: list[Signal] | None = None

    def __len__(self) -> int:
        return len(self.symbols)

    def __getitem__(self, index):
        return self._objects()[index]

    def __iter__(self):
        return iter(self._objects())

    def _objects(self) -> list[Signal]:
        if self._signals is None:
            scores, ranks = self.scores.tolist(), self.ranks.tolist()
            members = {name: values.tolist() for name, values in self.members.items()}
            size = len(self.symbols)
            self._signals = [
                Signal(ts=self.ts, symbol=symbol, score=scores[i], rank=ranks[i],
                       members={name: values[i] for name, values in members.items()},
                       model_set=self.model_set, cross_section_size=size, horizon_bars=self.horizon_bars)
                for i, symbol in enumerate(self.symbols)
            ]
        return self._signals

    def messages(self) -> list[tuple[bytes, bytes]]:
        """``(key, value)`` of each signal, as its topic carries it: the
        symbol and ``encode(signal)``, byte for byte, built from the columns.

        Each number is written by the contract's encoder (a whole column in
        one call, then split at its commas: a number has none), so it reads
        exactly as inside a :class:`Signal`; the fields around the numbers
        follow :class:`Signal`'s field order."""
        size = len(self.symbols)
        if size == 0:
            return []
        head = b'{"ts":' + encode(self.ts) + b',"symbol":'
        tail = (b',"model_set":' + encode(self.model_set) + b',"cross_section_size":' + encode(size)
                + b',"horizon_bars":' + encode(self.horizon_bars) + b"}")
        columns = [[encode(symbol) for symbol in self.symbols], _numbers(self.scores), _numbers(self.ranks)]
        around = [head, b',"score":', b',"rank":']  # what precedes each column; the last entry ends a message
        members = b',"members":{'
        for name, values in self.members.items():
            columns.append(_numbers(values))
            around.append(members + encode(name) + b":")
            members = b","
        around.append((b',"members":{}' if not self.members else b"}") + tail)
        template = b"%b".join(part.replace(b"%", b"%%") for part in around)
        values = [template % row for row in zip(*columns)]
        return [(symbol.encode(), value) for symbol, value in zip(self.symbols, values)]


def _numbers(values: np.ndarray) -> list[bytes]:
    """Each float as the contract's encoder writes it (NaN and infinities as null)."""
    return encode(values.tolist())[1:-1].split(b",")


def build_signals(
    ts: int,
    symbols: list[str],
    scores: np.ndarray,
    member_scores: dict[str, np.ndarray],
    model_set: str,
    horizon_bars: int,
) -> CrossSectionSignals:
    """One signal per symbol, in the given order."""
    return CrossSectionSignals(ts, symbols, scores, percentile_ranks(scores), member_scores, model_set, horizon_bars)


def signal_messages(signals: Sequence[Signal]) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` of each of ``signals`` as the signals topic carries it."""
    if isinstance(signals, CrossSectionSignals):
        return signals.messages()
    return [(signal.symbol.encode(), encode(signal)) for signal in signals]


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _aligned(values: np.ndarray, index: np.ndarray) -> list[float | None]:
    """``values[index]`` as a list; None where ``index`` is -1 or the value is not finite."""
    picked = values[np.maximum(index, 0)]
    out = picked.tolist()
    for i in np.flatnonzero((index < 0) | ~np.isfinite(picked)).tolist():
        out[i] = None
    return out


def build_record(ts: int, role: str, symbols: list[str], closes: list[float], signals: Sequence[Signal],
                 model_set: str = "", horizon_bars: int = 0) -> CrossSectionRecord:
    """The cross-section record of bar time ``ts``: every bar's close and,
    aligned with them, the scores of the symbols that have a signal (None
    for the others; NaN scores too, since JSON has no NaN)."""
    if isinstance(signals, CrossSectionSignals) and len(signals):
        position = {symbol: i for i, symbol in enumerate(signals.symbols)}
        index = np.fromiter((position.get(symbol, -1) for symbol in symbols), dtype=np.int64, count=len(symbols))
        score = _aligned(signals.scores, index)
        members = {name: _aligned(signals.members[name], index) for name in sorted(signals.members)}
    else:
        by_symbol = {signal.symbol: signal for signal in signals}
        names = sorted({name for signal in signals for name in signal.members})
        score = []
        members = {name: [] for name in names}
        for symbol in symbols:
            signal = by_symbol.get(symbol)
            score.append(None if signal is None else _finite(signal.score))
            for name in names:
                members[name].append(None if signal is None or name not in signal.members
                                     else _finite(signal.members[name]))
    return CrossSectionRecord(ts=ts, role=role, model_set=model_set if len(signals) else "",
                              horizon_bars=horizon_bars if len(signals) else 0, symbols=list(symbols),
                              closes=[float(c) for c in closes], score=score, members=members)
