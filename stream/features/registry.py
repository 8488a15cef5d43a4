"""Symbol → state row, with room to grow and rows freed when a symbol leaves."""

from __future__ import annotations

from typing import Any

import numpy as np


class SymbolRegistry:
    """Assigns each symbol a row of the feature state arrays.

    Lookup of a whole cross-section is vectorised (binary search in a sorted
    copy of the names), so a known universe costs no Python loop; only
    symbols seen for the first time are added one by one. A removed symbol's
    row is reused by the next newcomer, so rows stay bounded by the largest
    number of symbols held at once.
    """

    def __init__(self) -> None:
        self._names: list[str | None] = []  # by row; None for a free row
        self._row_of: dict[str, int] = {}
        self._free: list[int] = []
        self._sorted_names = np.empty(0, dtype=str)
        self._sorted_rows = np.empty(0, dtype=np.int64)
        self._dirty = False
        self.version = 0  # bumps on every change; lets callers cache lookups

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._row_of

    @property
    def n_rows(self) -> int:
        """Rows in use or freed: the state arrays need at least this many."""
        return len(self._names)

    @property
    def symbols(self) -> list[str]:
        return [name for name in self._names if name is not None]

    def names_of(self, rows: np.ndarray) -> np.ndarray:
        return np.array([self._names[r] for r in rows], dtype=str)

    def row(self, symbol: str) -> int | None:
        return self._row_of.get(symbol)

    def add(self, symbol: str) -> int:
        row = self._row_of.get(symbol)
        if row is not None:
            return row
        if self._free:
            row = self._free.pop(0)
            self._names[row] = symbol
        else:
            row = len(self._names)
            self._names.append(symbol)
        self._row_of[symbol] = row
        self._changed()
        return row

    def remove(self, symbol: str) -> int | None:
        row = self._row_of.pop(symbol, None)
        if row is not None:
            self._names[row] = None
            self._free.append(row)
            self._free.sort()
            self._changed()
        return row

    def lookup(self, symbols: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Rows [k] of ``symbols`` (a str array), adding unknown ones; returns
        the rows and the symbols that were added."""
        rows, found = self._search(symbols)
        if found.all():
            return rows, []
        joined = []
        for symbol in dict.fromkeys(symbols[~found].tolist()):
            self.add(symbol)
            joined.append(symbol)
        rows, _ = self._search(symbols)
        return rows, joined

    def find(self, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows [k] of ``symbols`` (a str array) and whether each is known;
        adds nothing (an unknown symbol's row is meaningless)."""
        return self._search(symbols)

    def _search(self, symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._dirty:
            known = sorted(self._row_of)
            self._sorted_names = np.array(known, dtype=str)
            self._sorted_rows = np.array([self._row_of[s] for s in known], dtype=np.int64)
            self._dirty = False
        if len(self._sorted_names) == 0:
            return np.zeros(len(symbols), dtype=np.int64), np.zeros(len(symbols), dtype=bool)
        position = np.searchsorted(self._sorted_names, symbols)
        np.minimum(position, len(self._sorted_names) - 1, out=position)
        found = self._sorted_names[position] == symbols
        return self._sorted_rows[position], found

    def _changed(self) -> None:
        self._dirty = True
        self.version += 1

    def state(self) -> dict[str, Any]:
        return {"names": list(self._names), "free": list(self._free)}

    def restore(self, state: dict[str, Any]) -> None:
        self._names = [None if name is None else str(name) for name in state["names"]]
        self._row_of = {name: row for row, name in enumerate(self._names) if name is not None}
        self._free = sorted(int(row) for row in state["free"])
        self._changed()
