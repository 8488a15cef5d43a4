"""One complete cross-section of signals, as a subscriber receives it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Mapping

import numpy as np

from signalml.contracts import Signal


@dataclass(frozen=True, eq=False)
class SignalCrossSection:
    """Every signal of bar time ``ts`` scored by ``model_set``, as arrays.

    ``symbols`` are sorted; ``scores``, ``ranks`` and each of ``members``
    (member name -> scores) are float64 arrays in that order. A score the
    engine could not compute is NaN (JSON null on the topic), and so is its
    rank. The arrays are read-only: one cross-section may be shared."""

    ts: int  # bar close, epoch milliseconds UTC
    model_set: str
    horizon_bars: int
    symbols: tuple[str, ...]
    scores: np.ndarray
    ranks: np.ndarray
    members: Mapping[str, np.ndarray]
    instance: int = field(default=0, repr=False)  # which assembly this is (the reader's bookkeeping)

    @classmethod
    def of(cls, signals: list[Signal], instance: int = 0) -> "SignalCrossSection":
        """From the signals of one cross-section (any order)."""
        ordered = sorted(signals, key=lambda s: s.symbol)
        first = ordered[0]
        names = sorted(first.members)
        members = {name: _frozen([s.members[name] for s in ordered]) for name in names}
        return cls(ts=first.ts, model_set=first.model_set, horizon_bars=first.horizon_bars,
                   symbols=tuple(s.symbol for s in ordered), scores=_frozen([s.score for s in ordered]),
                   ranks=_frozen([s.rank for s in ordered]), members=members, instance=instance)

    @property
    def size(self) -> int:
        return len(self.symbols)

    @property
    def time(self) -> datetime:
        """The bar time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.ts / 1000, tz=timezone.utc)

    def signals(self) -> list[Signal]:
        """The cross-section as the topic's :class:`Signal` messages, by symbol."""
        return [
            Signal(ts=self.ts, symbol=symbol, score=float(self.scores[i]), rank=float(self.ranks[i]),
                   members={name: float(values[i]) for name, values in self.members.items()},
                   model_set=self.model_set, cross_section_size=self.size, horizon_bars=self.horizon_bars)
            for i, symbol in enumerate(self.symbols)
        ]

    def frame(self):
        """A pandas DataFrame indexed by symbol: ``score``, ``rank``, ``member_<name>``."""
        import pandas as pd

        columns = {"score": self.scores, "rank": self.ranks}
        columns.update({f"member_{name}": values for name, values in self.members.items()})
        return pd.DataFrame(columns, index=pd.Index(self.symbols, name="symbol"))

    def by_score(self) -> list[int]:
        """Indices from the highest score to the lowest; NaN scores last."""
        scores = np.where(np.isnan(self.scores), -np.inf, self.scores)
        order = np.lexsort((np.arange(self.size), -scores))  # ties keep symbol order
        return [int(i) for i in order]

    def as_dict(self) -> dict:
        """Plain data for JSON (NaN as None)."""
        return {
            "ts": self.ts,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "model_set": self.model_set,
            "size": self.size,
            "horizon_bars": self.horizon_bars,
            "symbols": list(self.symbols),
            "scores": _plain(self.scores),
            "ranks": _plain(self.ranks),
            "members": {name: _plain(values) for name, values in self.members.items()},
        }


def _frozen(values: list[float | None]) -> np.ndarray:
    array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    array.flags.writeable = False
    return array


def _plain(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]
