"""The shape every feature state machine shares.

A kernel keeps the state of one indicator family for many symbols in arrays
whose last axis is the symbol's row, so one call updates a whole
cross-section. Like River's detectors, it has one verb and a few reads:

* ``update(rows, bars)`` applies one bar to each given row and returns the
  outputs ``[n_outputs, k]`` (NaN where the row is not ready yet);
* ``ready`` says, per output and row, whether values are being produced;
* ``reset(rows=None)`` forgets; ``state()`` / ``restore()`` round-trip the
  whole state as plain data (see :mod:`.codec`), no pickle.

Subclasses declare their arrays in ``_declare`` and implement ``_update``;
everything else (growth, reset, snapshot) is generic here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from stream.features.bars import Bars
from stream.features.codec import decode_array, encode_array
from stream.features.rows import Rows

ArraySpec = tuple[type, tuple[int, ...], Any]  # dtype, leading shape, fill value


class KernelStateError(ValueError):
    """A state dict does not belong to this kernel (kind or parameters differ)."""


class Kernel:
    kind: ClassVar[str]
    output_names: tuple[str, ...]
    # Per output: the number of bars a row must have seen (the current one
    # included) before that output has a value.
    warmup_bars: tuple[int, ...]

    def __init__(self, capacity: int = 1):
        self._capacity = 0
        self._specs = self._declare()
        for name, (dtype, lead, fill) in self._specs.items():
            setattr(self, name, np.full(lead + (0,), fill, dtype=dtype))
        self.grow(max(1, int(capacity)))

    # ------------------------------------------------------------ subclass API

    def _declare(self) -> dict[str, ArraySpec]:
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The constructor's parameters, as plain data."""
        raise NotImplementedError

    def _update(self, rows: Rows, bars: Bars, out: np.ndarray) -> None:
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
        if rows.size:
            with np.errstate(all="ignore"):
                self._update(rows, bars, out)
        return out

    @property
    def ready(self) -> np.ndarray:
        """bool [n_outputs, capacity]: the row's last update produced a value."""
        seen = self.bars_seen  # every kernel declares it
        return seen[None, :] >= np.asarray(self.warmup_bars)[:, None]

    def reset(self, rows=None) -> None:
        """Forget the given rows (all rows when None), as if never updated."""
        sel = slice(None) if rows is None else Rows.of(rows).sel
        for name, (_, _, fill) in self._specs.items():
            getattr(self, name)[..., sel] = fill

    def grow(self, capacity: int) -> None:
        """Make room for ``capacity`` rows; existing rows keep their state."""
        if capacity <= self._capacity:
            return
        for name, (dtype, lead, fill) in self._specs.items():
            old = getattr(self, name)
            new = np.full(lead + (capacity,), fill, dtype=dtype)
            new[..., : self._capacity] = old
            setattr(self, name, new)
        self._capacity = capacity

    def state(self, n_rows: int | None = None) -> dict[str, Any]:
        """Plain-data snapshot of the first ``n_rows`` rows (all when None)."""
        n = self._capacity if n_rows is None else int(n_rows)
        return {
            "kind": self.kind,
            "params": self.params(),
            "rows": n,
            "arrays": {name: encode_array(getattr(self, name)[..., :n]) for name in self._specs},
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
        for name, (dtype, lead, fill) in self._specs.items():
            data = decode_array(state["arrays"][name])
            if data.shape != lead + (n,) or data.dtype != np.dtype(dtype):
                raise KernelStateError(f"{self.kind}.{name}: expected {lead + (n,)} {np.dtype(dtype)}, got {data.shape} {data.dtype}")
            arrays[name] = data
        self.reset()
        for name, data in arrays.items():
            getattr(self, name)[..., :n] = data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params()}, capacity={self._capacity})"


def steady(seen: np.ndarray, warmup: int) -> bool:
    """Every row has seen at least ``warmup`` bars before this one: the
    warm-up branches can be skipped (the common case, and the fast one)."""
    return bool(seen.min() >= warmup)
