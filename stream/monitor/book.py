"""Signals grouped by bar time, one book per role, kept in the store::

    x|ROLE|TS      -> {"model_set", "size", "horizon", "members": [...]}  (written once)
    r|ROLE|TS|SYM  -> [score, member scores in "members" order]            (one per signal)

The counts and the pending bar times are derived from these keys (and
rebuilt by :meth:`load` after a restart), so a replayed signal is
recognised by its key and changes nothing.
"""

from __future__ import annotations

import bisect
from typing import MutableMapping

import numpy as np

from signalml.contracts import Signal


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def _stored(value: float) -> float | None:
    # Stored as JSON: NaN is not JSON, None is.
    return None if value is None or not np.isfinite(value) else float(value)


class SignalBook:
    def __init__(self, store: MutableMapping, role: str, default_horizon_bars: int):
        self.store = store
        self.role = role
        self.default_horizon_bars = default_horizon_bars
        self.pending: list[int] = []
        self.counts: dict[int, int] = {}
        self.symbols: dict[int, set[str]] = {}

    def load(self, released: int | None) -> None:
        """Rebuild the pending bar times and counts from the store; drop
        what was left of bar times already released."""
        prefix_x, prefix_r = f"x|{self.role}|", f"r|{self.role}|"
        self.pending, self.counts, self.symbols = [], {}, {}
        garbage = []
        for key in list(self.store.keys()):
            if key.startswith(prefix_x):
                ts = int(key[len(prefix_x):])
                if released is not None and ts <= released:
                    garbage.append(key)
                else:
                    bisect.insort(self.pending, ts)
                    self.counts.setdefault(ts, 0)
            elif key.startswith(prefix_r):
                ts_text, _, symbol = key[len(prefix_r):].partition("|")
                ts = int(ts_text)
                if released is not None and ts <= released:
                    garbage.append(key)
                    continue
                self.counts[ts] = self.counts.get(ts, 0) + 1
                self.symbols.setdefault(ts, set()).add(symbol)
        for key in garbage:
            self.store.pop(key, None)

    def meta(self, ts: int) -> dict:
        return self.store[f"x|{self.role}|{ts}"]

    def add(self, signal: Signal) -> bool:
        """Record the signal; False when it was already recorded."""
        ts = signal.ts
        meta_key = f"x|{self.role}|{ts}"
        meta = self.store.get(meta_key)
        if meta is None:
            meta = {"model_set": signal.model_set, "size": signal.cross_section_size,
                    "horizon": signal.horizon_bars or self.default_horizon_bars, "members": sorted(signal.members)}
            self.store[meta_key] = meta
        if ts not in self.counts:
            bisect.insort(self.pending, ts)
            self.counts[ts] = 0
        row_key = f"r|{self.role}|{ts}|{signal.symbol}"
        if row_key in self.store:
            return False
        self.store[row_key] = [_stored(signal.score), *(_stored(signal.members.get(m)) for m in meta["members"])]
        self.counts[ts] += 1
        self.symbols.setdefault(ts, set()).add(signal.symbol)
        return True

    def complete(self, ts: int) -> bool:
        """Every signal of bar time ``ts`` arrived, or a later bar time's
        did (so the signals stream is past ``ts`` on every partition)."""
        if self.counts.get(ts, 0) >= self.meta(ts)["size"]:
            return True
        return any(self.counts[later] >= self.meta(later)["size"] for later in self.pending if later > ts)

    def rows(self, ts: int) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
        """Symbols (sorted), ensemble scores and member scores of ``ts``."""
        meta = self.meta(ts)
        symbols = sorted(self.symbols.get(ts, ()))
        rows = [self.store[f"r|{self.role}|{ts}|{s}"] for s in symbols]
        table = np.array([[_number(v) for v in row] for row in rows], dtype=np.float64).reshape(len(rows), 1 + len(meta["members"]))
        members = {name: table[:, j + 1] for j, name in enumerate(meta["members"])}
        return symbols, table[:, 0] if len(rows) else np.zeros(0), members

    def drop(self, ts: int) -> None:
        """Forget a released bar time (its keys are garbage from now on)."""
        for symbol in self.symbols.pop(ts, ()):
            self.store.pop(f"r|{self.role}|{ts}|{symbol}", None)
        self.store.pop(f"x|{self.role}|{ts}", None)
        self.counts.pop(ts, None)
        self.pending.remove(ts)
