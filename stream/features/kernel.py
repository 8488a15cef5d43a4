"""The shape every feature state machine shares.

A kernel keeps the state of one indicator family for many symbols in arrays
whose last axis is the symbol's row, so one call updates a whole
cross-section. Like River's detectors, it has one verb and a few reads:

* ``update(rows, bars)`` applies one bar to each given row and returns the
  outputs ``[n_outputs, k]`` (NaN where the row is not ready yet);
* ``ready`` says, per output and row, whether values are being produced;
* ``reset(rows=None)`` forgets; ``state()`` / ``restore()`` round-trip the
  whole state as plain data (see :mod:`.codec`), no pickle.

Subclasses declare their arrays in ``_declare`` (row axis last, or first
where the spec says :data:`ROWS_FIRST`) and implement ``_update``,
which gets a :class:`Step` (the rows and their bar counts); everything else
(growth, reset, snapshot) is generic here. ``_update`` updates the state in
place (on views of contiguous rows: no gather, no scatter) and takes its
warm-up branches only while some row of the step still needs them.

One row at a time (a single bar), array calls would cost far more than
the arithmetic, so subclasses also implement ``_update_one``: the same
operations in the same order on Python floats, which are IEEE doubles like
numpy's, hence the same bits (the contract tests compare the two paths).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from stream.features.bars import Bars
from stream.features.codec import decode_array, encode_array
from stream.features.rows import Rows

# dtype, leading shape, fill value; optionally ROWS_FIRST: the row axis first,
# [capacity, *lead], for a structure each row indexes by its own data (a
# sorted window), whose slots are then contiguous per row.
ArraySpec = tuple
ROWS_FIRST = "rows_first"
Bar = tuple[float, float, float, float, float]  # open, high, low, close, volume


# The one-row paths (``_update_one``) divide and take maxima of Python floats
# as numpy does elementwise, so that bad input gives the same NaN and inf on
# both paths rather than an exception on one.


def divide(a: float, b: float) -> float:
    """``a / b`` with numpy's IEEE result where Python raises (``b`` zero):
    NaN for 0/0 and NaN/0, a signed infinity otherwise."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0.0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats: NaN if either is (``max`` would not)."""
    return a if a >= b or a != a else b


class _Spec:
    """One declared state array (see :data:`ArraySpec`)."""

    __slots__ = ("dtype", "lead", "fill", "rows_first")

    def __init__(self, dtype, lead, fill, layout=None):
        self.dtype, self.lead, self.fill = dtype, tuple(lead), fill
        self.rows_first = layout == ROWS_FIRST

    def shape(self, capacity: int) -> tuple[int, ...]:
        return (capacity, *self.lead) if self.rows_first else (*self.lead, capacity)

    def rows(self, array: np.ndarray, sel: slice):
        """The part of ``array`` that holds the rows ``sel`` (a view)."""
        return array[sel] if self.rows_first else array[..., sel]

    def assign(self, array: np.ndarray, sel, values) -> None:
        """``values`` into the rows ``sel`` (a slice or an index array) of ``array``."""
        if self.rows_first:
            array[sel] = values
        else:
            array[..., sel] = values


class KernelStateError(ValueError):
    """A state dict does not belong to this kernel (kind or parameters differ)."""


def widened(values: np.ndarray, n: int) -> np.ndarray:
    """``values`` [k] repeated as a new [n, k] array. An elementwise op of
    two [n, k] arrays runs numpy's contiguous fast loop; one that broadcasts a
    [k] or [n, 1] operand costs about a microsecond more per call, which adds
    up over the ~100 such ops of a cross-section of a few hundred rows."""
    wide = np.empty((n, len(values)))
    wide[...] = values
    return wide


class PerPeriod:
    """A per-period constant: ``column`` [L, 1], and :meth:`wide` [L, k] for
    the row count asked for last (see :func:`widened`). Never modify either."""

    __slots__ = ("column", "_wide")

    def __init__(self, values):
        self.column = np.asarray(values, dtype=np.float64).reshape(-1, 1)
        self._wide = self.column

    def wide(self, k: int) -> np.ndarray:
        if self._wide.shape[1] != k:
            self._wide = np.repeat(self.column, k, axis=1)
        return self._wide


class Step:
    """One update as a kernel sees it: its rows and how many bars each had
    seen before this one (``seen`` [k], not to be modified).

    The engine builds one per call for all its kernels, whose bar counts
    equal its own. ``least`` and ``most`` let a kernel choose its branches
    with integer comparisons: past its warm-up when ``least`` is, and
    ``aligned`` when every row is at the same bar count (a universe that
    started together and missed no bar), so a ring slot is one index for all
    rows and ring reads are slices rather than gathers (see :mod:`.window`).
    """

    __slots__ = ("rows", "seen", "least", "most", "_ring_bases", "_wide")

    def __init__(self, rows: Rows, seen: np.ndarray, least: int | None = None, most: int | None = None):
        self.rows = rows
        self.seen = seen
        if least is None:
            least, most = (int(seen[0]),) * 2 if len(seen) == 1 else (int(seen.min()), int(seen.max()))
        self.least, self.most = least, most
        self._ring_bases: dict[tuple[int, int], np.ndarray] = {}
        self._wide: dict[tuple[int, int], np.ndarray] = {}

    @property
    def aligned(self) -> bool:
        return self.least == self.most

    def wide(self, field: np.ndarray, n: int) -> np.ndarray:
        """A bar field [k] repeated as [n, k], made once per step (see
        :func:`widened`); ``field`` must outlive the step (a ``Bars`` field)."""
        key = (id(field), n)
        wide = self._wide.get(key)
        if wide is None:
            wide = self._wide[key] = widened(field, n)
        return wide

    def ring_base(self, ring_bars: int, capacity: int) -> np.ndarray:
        """Flat position [k] of each row's current slot (bar ``seen``) in a
        ``[ring_bars, capacity]`` ring; computed once per ring shape."""
        key = (ring_bars, capacity)
        base = self._ring_bases.get(key)
        if base is None:
            base = (self.seen % ring_bars) * capacity + self.rows.index
            self._ring_bases[key] = base
        return base


class Kernel:
    kind: ClassVar[str]
    output_names: tuple[str, ...]
    # Per output: the number of bars a row must have seen (the current one
    # included) before that output has a value.
    warmup_bars: tuple[int, ...]

    def __init__(self, capacity: int = 1):
        self._capacity = 0
        self._specs = {name: _Spec(*spec) for name, spec in self._declare().items()}
        for name, spec in self._specs.items():
            setattr(self, name, np.full(spec.shape(0), spec.fill, dtype=spec.dtype))
        self.grow(max(1, int(capacity)))

    # ------------------------------------------------------------ subclass API

    def _declare(self) -> dict[str, ArraySpec]:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The constructor's parameters, as plain data."""
        raise NotImplementedError

    def _update(self, step: Step, bars: Bars, out: np.ndarray) -> None:
        """Apply the bars to ``step.rows`` (at least one row), write the
        outputs into ``out`` [n_outputs, k] and count the bar in ``bars_seen``."""
        raise NotImplementedError

    def _update_one(self, row: int, seen: int, bar: Bar) -> list[float]:
        """:meth:`_update` for one row that has seen ``seen`` bars: returns
        the outputs [n_outputs]."""
        raise NotImplementedError

    # ------------------------------------------------------------ protocol

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    def update(self, rows, bars: Bars, out: np.ndarray | None = None) -> np.ndarray:
        """Apply one bar per row; ``rows`` is a :class:`Rows`, slice or int array
        of distinct rows, ``bars`` holds [k] arrays. Returns ``[n_outputs, k]``."""
        rows = Rows.of(rows)
        if out is None:
            out = np.empty((self.n_outputs, rows.size))
        if rows.size == 1:
            row = int(rows.index[0])
            with np.errstate(all="ignore"):
                out[:, 0] = self._update_one(row, self.bars_seen.item(row), tuple(float(field[0]) for field in bars))
        elif rows.size:
            with np.errstate(all="ignore"):
                self._update(Step(rows, self.bars_seen[rows.sel].copy()), bars, out)
        return out

    @property
    def ready(self) -> np.ndarray:
        """bool [n_outputs, capacity]: the row's last update produced a value."""
        seen = self.bars_seen  # every kernel declares it
        return seen[None, :] >= np.asarray(self.warmup_bars)[:, None]

    def reset(self, rows=None) -> None:
        """Forget the given rows (all rows when None), as if never updated."""
        sel = slice(None) if rows is None else Rows.of(rows).sel
        for name, spec in self._specs.items():
            spec.assign(getattr(self, name), sel, spec.fill)

    def grow(self, capacity: int) -> None:
        """Make room for ``capacity`` rows; existing rows keep their state."""
        if capacity <= self._capacity:
            return
        for name, spec in self._specs.items():
            new = np.full(spec.shape(capacity), spec.fill, dtype=spec.dtype)
            spec.assign(new, slice(0, self._capacity), getattr(self, name))
            setattr(self, name, new)
        self._capacity = capacity

    def state(self, n_rows: int | None = None) -> dict[str, Any]:
        """Plain-data snapshot of the first ``n_rows`` rows (all when None)."""
        n = self._capacity if n_rows is None else int(n_rows)
        return {
            "kind": self.kind,
            "params": self.params(),
            "rows": n,
            "arrays": {name: encode_array(spec.rows(getattr(self, name), slice(0, n))) for name, spec in self._specs.items()},
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state by a :meth:`state` snapshot of an equal kernel."""
        if state.get("kind") != self.kind or state.get("params") != self.params():
            raise KernelStateError(
                f"state of {state.get('kind')!r} {state.get('params')!r} cannot restore "
                f"{self.kind!r} {self.params()!r}"
            )
        n = int(state["rows"])
        self.grow(n)
        arrays = {}
        for name, spec in self._specs.items():
            data = decode_array(state["arrays"][name])
            if data.shape != spec.shape(n) or data.dtype != np.dtype(spec.dtype):
                raise KernelStateError(f"{self.kind}.{name}: expected {spec.shape(n)} {np.dtype(spec.dtype)}, got {data.shape} {data.dtype}")
            arrays[name] = data
        self.reset()
        for name, data in arrays.items():
            self._specs[name].assign(getattr(self, name), slice(0, n), data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params()}, capacity={self._capacity})"
