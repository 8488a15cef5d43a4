"""A kernel whose update is one compiled loop (see :mod:`.jit`).

Subclasses declare their state arrays (``_declare``, as every kernel) and
set ``_loop``, a compiled function called as::

    _loop(rows, seen, open, high, low, close, volume, out, out_rows,
          *self._state_arguments(), *self._constants())

It applies bar ``i`` to state row ``rows[i]``, which has seen ``seen[i]``
bars before, counts it in ``bars_seen`` and writes output ``j`` of that bar
to ``out[out_rows[j], i]`` (nothing where ``out_rows[j]`` is -1). The engine
passes its own feature matrix and the columns of the outputs it selected,
so a kernel writes straight into place; alone, a kernel writes ``[n_outputs,
k]`` as every kernel does.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Bar, Kernel, Step


class JitKernel(Kernel):
    _loop: ClassVar[Callable[..., None]]

    def __init__(self, capacity: int = 1):
        self._arguments = None
        super().__init__(capacity)
        self._all_outputs = np.arange(self.n_outputs, dtype=np.int64)
        self._one_row = np.zeros(1, dtype=np.int64)
        self._one_seen = np.zeros(1, dtype=np.int64)
        self._one_bar = np.zeros((5, 1))

    def _constants(self) -> tuple[Any, ...]:
        """Read-only parameters the loop takes after the state (windows...)."""
        return ()

    def _state_arguments(self) -> tuple[Any, ...]:
        """The state as the loop takes it: every array in declaration order
        (a subclass may group some into a tuple)."""
        return tuple(getattr(self, name) for name in self._specs)

    def grow(self, capacity: int) -> None:
        super().grow(capacity)
        self._arguments = None  # the arrays were replaced

    def advance(self, rows: np.ndarray, seen: np.ndarray, bars: Bars, out: np.ndarray, out_rows: np.ndarray) -> None:
        """Apply ``bars`` [k] to ``rows`` (int64 [k], distinct) that have seen
        ``seen`` [k] bars; outputs into ``out[out_rows[j], i]``."""
        if self._arguments is None:  # state and constants, gathered once: a single bar is a few µs
            self._arguments = (*self._state_arguments(), *self._constants())
        type(self)._loop(rows, seen, *bars, out, out_rows, *self._arguments)

    def _update(self, step: Step, bars: Bars, out: np.ndarray) -> None:
        self.advance(step.rows.index, step.seen, bars, out, self._all_outputs)

    def _update_one(self, row: int, seen: int, bar: Bar) -> list[float]:
        out = np.empty((self.n_outputs, 1))
        self.advance_one(row, seen, bar, out, self._all_outputs)
        return out[:, 0].tolist()

    def advance_one(self, row: int, seen: int, bar: Bar, out: np.ndarray, out_rows: np.ndarray) -> None:
        """:meth:`advance` of one bar (five floats) through the same loop."""
        self._one_row[0] = row
        self._one_seen[0] = seen
        self._one_bar[:, 0] = bar
        fields = self._one_bar
        self.advance(self._one_row, self._one_seen, Bars(fields[0], fields[1], fields[2], fields[3], fields[4]), out, out_rows)
