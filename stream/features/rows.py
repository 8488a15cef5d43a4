"""Which rows (symbols) of the state arrays one update touches."""

from __future__ import annotations

import numpy as np


class Rows:
    """The state rows of one update, each at most once.

    ``index`` is the int64 row of each bar; ``sel`` selects the same rows
    from an array's last axis: a slice when they are contiguous and ascending
    (a view, no gather), the index array otherwise.
    """

    __slots__ = ("index", "sel", "size")

    def __init__(self, index: np.ndarray, sel: slice | np.ndarray):
        self.index = index
        self.sel = sel
        self.size = len(index)

    @classmethod
    def of(cls, index) -> "Rows":
        if isinstance(index, Rows):
            return index
        if isinstance(index, slice):
            start, stop, step = index.indices(index.stop if index.stop is not None else 0)
            return cls.span(start, stop)
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        k = len(index)
        if k and index[-1] - index[0] == k - 1 and (k == 1 or bool((index[1:] > index[:-1]).all())):
            return cls(index, slice(int(index[0]), int(index[0]) + k))
        return cls(index, index)

    @classmethod
    def span(cls, start: int, stop: int) -> "Rows":
        return cls(np.arange(start, stop, dtype=np.int64), slice(start, stop))
