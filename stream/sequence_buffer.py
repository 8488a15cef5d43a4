"""The deep models' input, live: each symbol's last ``T`` normalised feature rows.

:func:`training.sequences.sequence_window` defines a sequence (a symbol's
own last ``T`` rows, oldest first, NaN replaced by 0, zero-padded at the
start of its history); this ring buffer rebuilds exactly that for a whole
cross-section at once, in O(T·F) per symbol and bounded memory.
"""

from __future__ import annotations

import numpy as np

from stream.features.codec import array_bytes


class SequenceBuffer:
    """Ring buffers [capacity, T, F] float32 with one write count per symbol."""

    def __init__(self, length: int, n_features: int, capacity: int = 64):
        if length < 1:
            raise ValueError(f"sequence length must be >= 1, got {length}")
        self.length = length
        self.n_features = n_features
        self.slots: dict[str, int] = {}
        self._rows = np.zeros((capacity, length, n_features), dtype=np.float32)
        self._count = np.zeros(capacity, dtype=np.int64)

    def _slots_of(self, symbols: list[str]) -> np.ndarray:
        slots = np.empty(len(symbols), dtype=np.int64)
        for i, symbol in enumerate(symbols):
            slot = self.slots.get(symbol)
            if slot is None:
                slot = self.slots[symbol] = len(self.slots)
                if slot >= len(self._count):
                    self._grow(2 * len(self._count))
            slots[i] = slot
        return slots

    def _grow(self, capacity: int) -> None:
        rows = np.zeros((capacity, self.length, self.n_features), dtype=np.float32)
        rows[: len(self._rows)] = self._rows
        count = np.zeros(capacity, dtype=np.int64)
        count[: len(self._count)] = self._count
        self._rows, self._count = rows, count

    def update(self, symbols: list[str], rows: np.ndarray) -> None:
        """Append one normalised row [F] per symbol (rows [n, F], one per symbol)."""
        slots = self._slots_of(symbols)
        position = self._count[slots] % self.length
        self._rows[slots, position] = np.nan_to_num(
            np.asarray(rows, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0
        )
        self._count[slots] += 1

    def windows(self, symbols: list[str]) -> np.ndarray:
        """[n, T, F] float32: each symbol's sequence ending at its latest row."""
        slots = self._slots_of(symbols)
        count = self._count[slots]
        steps = np.arange(self.length, dtype=np.int64)
        # Time step j (oldest first) of a symbol with c rows written is row
        # c - T + j; positions before its first row are padding (zeros).
        absolute = count[:, None] - self.length + steps[None, :]
        # take() on the rows as one [slots * T, F] table copies whole rows,
        # faster than a fancy index over the two leading axes (same values).
        table = self._rows.reshape(-1, self.n_features)
        flat = (slots[:, None] * self.length + absolute % self.length).ravel()
        out = table.take(flat, axis=0).reshape(len(slots), self.length, self.n_features)
        out[absolute < 0] = 0.0
        return out

    def state(self) -> dict:
        """Plain data; the arrays as their little-endian bytes."""
        n = len(self.slots)
        return {
            "version": 1,
            "length": self.length,
            "n_features": self.n_features,
            "symbols": sorted(self.slots, key=self.slots.__getitem__),
            "rows": self._rows[:n].astype("<f4").tobytes(),
            "count": self._count[:n].tolist(),
        }

    @classmethod
    def from_state(cls, state: dict) -> "SequenceBuffer":
        if state.get("version") != 1:
            raise ValueError(f"unknown sequence buffer state version {state.get('version')!r}")
        n = len(state["symbols"])
        buffer = cls(state["length"], state["n_features"], capacity=max(1, n))
        buffer.slots = {symbol: i for i, symbol in enumerate(state["symbols"])}
        rows = np.frombuffer(array_bytes(state["rows"]), dtype="<f4")
        buffer._rows[:n] = rows.reshape(n, buffer.length, buffer.n_features)
        buffer._count[:n] = state["count"]
        return buffer
