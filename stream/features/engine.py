"""FeatureEngine: every selected feature of every symbol, one cross-section per call.

State lives in arrays with one row per symbol (see :mod:`.kernel`); a call
maps its symbols to rows, drops the bars that must not update state
(defects per :mod:`.bars`, duplicate or out-of-order ``ts`` per symbol),
updates every kernel once for the whole cross-section (:mod:`.layout` says
which kernels the selected features need and where their outputs go), then
computes the features that depend on the other symbols of the bar time,
alpha ranks and market regressions (:mod:`.cross_sectional`).

The common call is checked first and cheaply: the same symbols as the call
before (their rows cached), every bar consistent and newer than the
symbol's last; the kernels then update in place on views of the rows
(see :class:`~.kernel.Step`). A single bar (``update_bar``, or a call with
one symbol) goes through the kernels' one-row path, which gives the same
bits without the per-call cost of array operations; its alphas are ranked
by counting rather than sorting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from signalml.config import FeatureSettings
from stream.features import snapshot
from stream.features.bars import (
    ACCEPTED,
    DUPLICATE_TS,
    OUT_OF_ORDER_TS,
    REASONS,
    Bars,
    all_consistent,
    bar_defect_codes,
    consistent,
)
from stream.features.codec import decode_array, encode_array
from stream.features.cross_sectional import CrossSectionalFeatures
from stream.features.frame import FeatureFrame
from stream.features.kernel import Kernel, Step
from stream.features.layout import plan
from stream.features.names import feature_names
from stream.features.registry import SymbolRegistry
from stream.features.rows import Rows

NO_TS = np.iinfo(np.int64).min


class FeatureEngine:
    """Streaming features for a universe of symbols (see :func:`feature_names`).

    ``update`` takes all bars of one bar time at once (or any subset of
    them); ``update_bar`` takes one. Alphas are ranked over the symbols the
    engine has applied at that bar time so far; :meth:`cross_section` gives
    the final ranks once every symbol of the bar time is in.
    """

    def __init__(self, settings: FeatureSettings, *, capacity: int = 64):
        self.settings = settings
        self.feature_names = feature_names(settings)
        layout = plan(settings, self.feature_names)
        self._parts = layout.parts
        self._peers = CrossSectionalFeatures(layout)
        self.warmup_bars = layout.warmup_bars
        self._n_features = len(self.feature_names)
        self._registry = SymbolRegistry()
        self._capacity = 0
        self._bars_seen = np.zeros(0, dtype=np.int64)
        self._last_ts = np.full(0, NO_TS, dtype=np.int64)
        self._last_ordinal = np.full(0, -1, dtype=np.int64)
        self._latest = np.full((self._n_features, 0), np.nan)  # the symbol's own features; the others unused
        self._bar_ordinal = -1  # how many distinct newest bar times, minus one
        self._newest_ts = NO_TS
        self._by_code = np.zeros(len(REASONS), dtype=np.int64)
        self._joined = self._left = self._gaps = 0
        self._cache: tuple | None = None
        self._grow(max(1, capacity))

    # ------------------------------------------------------------ updates

    def update(
        self,
        ts_ms: int,
        symbols: Sequence[str] | np.ndarray,
        open,  # noqa: A002 - the bar's field name
        high,
        low,
        close,
        volume,
    ) -> FeatureFrame:
        """Apply the bars of bar time ``ts_ms`` (one per symbol, arrays [k])
        and return the features of exactly these symbols, in this order."""
        ts = int(ts_ms)
        symbols = _as_symbols(symbols)
        bars = Bars.of(open, high, low, close, volume)
        if len(symbols) != len(bars.close):
            raise ValueError(f"{len(symbols)} symbols but {len(bars.close)} bars")
        rows, distinct = self._rows_of(symbols)
        if distinct and all_consistent(bars) and bool((self._last_ts[rows.sel] < ts).all()):
            self._by_code[ACCEPTED] += rows.size
            values = self._apply(ts, rows, bars)
            return FeatureFrame(ts, symbols, values.T, self.feature_names, np.zeros(rows.size, dtype=np.int8))
        codes = bar_defect_codes(*bars)
        self._check_order(ts, rows.index, distinct, codes)
        self._by_code += np.bincount(codes, minlength=len(REASONS))
        ok = codes == ACCEPTED
        values = np.full((len(self.feature_names), len(codes)), np.nan)
        if ok.any():
            values[:, ok] = self._apply(ts, Rows.of(rows.index[ok]), bars.take(ok))
        return FeatureFrame(ts, symbols, values.T, self.feature_names, codes)

    def update_bar(self, symbol: str, ts_ms: int, open, high, low, close, volume) -> np.ndarray:  # noqa: A002
        """Apply one bar; its features [F] (all NaN if the bar was not applied)."""
        row = self._registry.row(symbol) if isinstance(symbol, str) else None
        try:
            fields = np.array((open, high, low, close, volume), dtype=np.float64)
        except (TypeError, ValueError):  # not five numbers: the general path raises as it would
            fields = None
        bar = tuple(fields.tolist()) if fields is not None and fields.shape == (5,) else None
        ts = int(ts_ms)
        if (
            row is None
            or bar is None
            or not consistent(*bar)
            or self._last_ts.item(row) >= ts
        ):  # a newcomer, a defect, a duplicate or a late bar: the general path sorts it out
            frame = self.update(ts, np.array([symbol], dtype=str), [open], [high], [low], [close], [volume])
            return frame.values[0]
        self._by_code[ACCEPTED] += 1
        return self._apply_one(ts, row, bar)

    def cross_section(self, ts_ms: int) -> FeatureFrame:
        """Features of every symbol whose latest applied bar is at ``ts_ms``,
        sorted by symbol, alphas ranked over all of them."""
        ts = int(ts_ms)
        members = np.flatnonzero(self._last_ts[: self._registry.n_rows] == ts)
        symbols = self._registry.names_of(members)
        order = np.argsort(symbols, kind="stable")
        members, symbols = members[order], symbols[order]
        values = self._latest.take(members, axis=1)
        if self._peers.active and len(members):
            values[self._peers.columns] = self._peers.values(ts, self._newest_ts, Rows.of(members))
        return FeatureFrame(ts, symbols, values.T, self.feature_names, np.zeros(len(members), dtype=np.int8))

    def _check_order(self, ts: int, rows: np.ndarray, distinct: bool, codes: np.ndarray) -> None:
        """Mark bars whose ts is not after the symbol's last applied one."""
        last = self._last_ts[rows]
        if not bool((last < ts).all()):
            ok = codes == 0
            codes[ok & (last == ts)] = DUPLICATE_TS
            codes[ok & (last > ts)] = OUT_OF_ORDER_TS
        if not distinct:
            # The first applicable bar of a symbol wins; later ones are duplicates.
            candidates = np.flatnonzero(codes == 0)
            _, first = np.unique(rows[candidates], return_index=True)
            later = np.ones(len(candidates), dtype=bool)
            later[first] = False
            codes[candidates[later]] = DUPLICATE_TS

    def _apply(self, ts: int, rows: Rows, bars: Bars) -> np.ndarray:
        """Apply bars that all may update state; their features [F, k]."""
        if rows.size == 1:
            return self._apply_one(ts, int(rows.index[0]), tuple(float(field[0]) for field in bars))[:, None]
        values = np.empty((self._n_features, rows.size))
        if not rows.size:
            return values
        sel = rows.sel
        self._peers.begin(ts, self._newest_ts, self._last_ts[: self._registry.n_rows])
        step = Step(rows, self._bars_seen[sel])  # kernels count bars as the engine does
        with np.errstate(all="ignore"):
            for part in self._parts:
                part.apply(step, bars, values)
            self._peers.apply(step, bars)
        self._count_gaps(ts, rows)
        self._last_ts[sel] = ts
        self._bars_seen[sel] += 1
        rows.assign(self._latest, values)
        if self._peers.active:
            if ts < self._newest_ts:
                self._peers.late(ts, rows.index)
            values[self._peers.columns] = self._cross_sectional(ts, rows)
        return values

    def _apply_one(self, ts: int, row: int, bar: tuple[float, ...]) -> np.ndarray:
        """:meth:`_apply` of one bar, through the kernels' one-row path; its features [F]."""
        seen = self._bars_seen.item(row)
        values = np.empty((self._n_features, 1))
        self._peers.begin(ts, self._newest_ts, self._last_ts[: self._registry.n_rows])
        with np.errstate(all="ignore"):
            for part in self._parts:
                part.apply_one(row, seen, bar, values)
            self._peers.apply_one(row, seen, bar)
        if self._is_newest(ts):
            previous = self._last_ordinal.item(row)
            if 0 <= previous < self._bar_ordinal - 1:
                self._gaps += 1
            self._last_ordinal[row] = self._bar_ordinal
        self._last_ts[row] = ts
        self._bars_seen[row] = seen + 1
        self._latest[:, row] = values[:, 0]
        if self._peers.active:
            if ts < self._newest_ts:
                self._peers.late(ts, np.array([row]))
            n = self._registry.n_rows
            members = np.flatnonzero(self._last_ts[:n] == ts)
            values[self._peers.columns, 0] = self._peers.values_one(ts, self._newest_ts, row, members)
        return values[:, 0]

    def _cross_sectional(self, ts: int, applied: Rows) -> np.ndarray:
        """The cross-sectional features [C, k] of the rows just applied at
        ``ts``, over every symbol applied at ``ts`` so far."""
        at_ts = self._last_ts[: self._registry.n_rows] == ts
        if np.count_nonzero(at_ts) == applied.size:  # this call holds the whole bar time so far
            return self._peers.values(ts, self._newest_ts, applied)
        members = Rows.of(np.flatnonzero(at_ts))
        values = np.empty((len(self._peers.columns), self._capacity))
        members.assign(values, self._peers.values(ts, self._newest_ts, members))
        return values.take(applied.index, axis=1)

    def _is_newest(self, ts: int) -> bool:
        """Whether ``ts`` is the newest bar time (counting a new one)."""
        if ts > self._newest_ts:
            self._newest_ts = ts
            self._bar_ordinal += 1
        return ts == self._newest_ts

    def _count_gaps(self, ts: int, applied: Rows) -> None:
        """A gap: a symbol's bar after it missed one or more newest bar times."""
        if self._is_newest(ts):
            previous = self._last_ordinal[applied.sel]
            if previous.min() < self._bar_ordinal - 1:
                self._gaps += int(np.count_nonzero((previous >= 0) & (previous < self._bar_ordinal - 1)))
            self._last_ordinal[applied.sel] = self._bar_ordinal

    # ------------------------------------------------------------ symbols

    def _rows_of(self, symbols: np.ndarray) -> tuple[Rows, bool]:
        key = (symbols.dtype, symbols.tobytes())  # same symbols as the last call: same rows
        cache = self._cache
        if cache is not None and cache[0] == self._registry.version and cache[1] == key:
            return cache[2], cache[3]
        index, joined = self._registry.lookup(symbols)
        if joined:
            self._joined += len(joined)
            self._grow(self._registry.n_rows)
        distinct = len(np.unique(index)) == len(index)
        rows = Rows.of(index)
        self._cache = (self._registry.version, key, rows, distinct)
        return rows, distinct

    def register(self, symbols: Sequence[str] | np.ndarray) -> None:
        """Give symbols their rows ahead of their first bar (optional: a batch
        that knows its universe gets contiguous rows, hence faster updates)."""
        self._rows_of(_as_symbols(symbols))

    def forget(self, symbol: str) -> bool:
        """A symbol leaves: drop its state and free its row. False if unknown."""
        row = self._registry.remove(symbol)
        if row is None:
            return False
        for part in self._parts:
            part.kernel.reset([row])
        self._peers.forget(row)
        self._bars_seen[row] = 0
        self._last_ts[row] = NO_TS
        self._last_ordinal[row] = -1
        self._latest[:, row] = np.nan
        self._left += 1
        return True

    def forget_idle(self, before_ts_ms: int) -> list[str]:
        """Forget every symbol whose latest applied bar is before ``before_ts_ms``."""
        n = self._registry.n_rows
        idle = np.flatnonzero((self._last_ts[:n] < int(before_ts_ms)) & (self._last_ts[:n] != NO_TS))
        names = sorted(self._registry.names_of(idle).tolist())
        for name in names:
            self.forget(name)
        return names

    @property
    def symbols(self) -> list[str]:
        return self._registry.symbols

    def bars_seen(self, symbols: Sequence[str] | np.ndarray) -> np.ndarray:
        """Bars applied per symbol (0 for an unknown symbol)."""
        rows, known = self._registry.find(_as_symbols(symbols))
        if not known.any():
            return np.zeros(len(rows), dtype=np.int64)
        return np.where(known, self._bars_seen[rows], 0).astype(np.int64)

    def ready(self, symbols: Sequence[str] | np.ndarray) -> np.ndarray:
        """Per symbol: every feature has a value from its latest bar on."""
        return self.bars_seen(symbols) >= self.warmup_bars

    @property
    def counts(self) -> dict[str, Any]:
        return {
            "bars_received": int(self._by_code.sum()),
            "bars_applied": int(self._by_code[0]),
            "rejected": {reason: int(n) for reason, n in zip(REASONS[1:], self._by_code[1:])},
            "symbols_joined": self._joined,
            "symbols_left": self._left,
            "symbols_active": len(self._registry),
            "gaps": self._gaps,
        }

    def reset(self) -> None:
        """Back to a fresh engine with the same settings."""
        self.__init__(self.settings, capacity=self._capacity)

    # ------------------------------------------------------------ snapshot

    def state(self) -> dict[str, Any]:
        """The whole state as versioned plain data (see :mod:`.snapshot`)."""
        n = self._registry.n_rows
        return {
            **snapshot.header(),
            "settings": self.settings.model_dump(mode="json"),
            "feature_names": list(self.feature_names),
            "registry": self._registry.state(),
            "bars_seen": encode_array(self._bars_seen[:n]),
            "last_ts": encode_array(self._last_ts[:n]),
            "last_ordinal": encode_array(self._last_ordinal[:n]),
            "latest": encode_array(self._latest[:, :n]),
            "cross_sectional": self._peers.state(n),
            "bar_ordinal": self._bar_ordinal,
            "newest_ts": self._newest_ts,
            "counts": {"by_code": self._by_code.tolist(), "joined": self._joined, "left": self._left, "gaps": self._gaps},
            "kernels": [kernel.state(n) for kernel in self._all_kernels()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "FeatureEngine":
        """A new engine continuing exactly where the snapshot's left off."""
        snapshot.check_header(state)
        engine = cls(FeatureSettings.model_validate(state["settings"]))
        engine.restore(state)
        return engine

    def restore(self, state: dict[str, Any]) -> None:
        """Replace this engine's state by a snapshot taken with equal settings."""
        snapshot.check_header(state)
        mine = self.settings.model_dump(mode="json")
        if state["settings"] != mine:
            raise snapshot.SnapshotError(
                f"snapshot was taken with other feature settings: {state['settings']} != {mine}"
            )
        fresh = FeatureEngine(self.settings)
        registry = SymbolRegistry()
        registry.restore(state["registry"])
        n = registry.n_rows
        fresh._grow(max(1, n))
        fresh._registry = registry
        try:
            fresh._bars_seen[:n] = decode_array(state["bars_seen"])
            fresh._last_ts[:n] = decode_array(state["last_ts"])
            fresh._last_ordinal[:n] = decode_array(state["last_ordinal"])
            fresh._latest[:, :n] = decode_array(state["latest"])
            fresh._peers.restore(state["cross_sectional"], n)
            kernels = fresh._all_kernels()
            if len(state["kernels"]) != len(kernels):
                raise snapshot.SnapshotError("snapshot holds another set of state machines")
            for kernel, kernel_state in zip(kernels, state["kernels"]):
                kernel.restore(kernel_state)
                if not np.array_equal(kernel.bars_seen[:n], fresh._bars_seen[:n]):
                    raise snapshot.SnapshotError(f"snapshot's {kernel.kind} state counts other bars than its engine")
        except (KeyError, ValueError) as exc:
            raise snapshot.SnapshotError(f"damaged feature engine snapshot: {exc}") from None
        fresh._bar_ordinal = int(state["bar_ordinal"])
        fresh._newest_ts = int(state["newest_ts"])
        counts = state["counts"]
        fresh._by_code = np.array(counts["by_code"], dtype=np.int64)
        fresh._joined, fresh._left, fresh._gaps = int(counts["joined"]), int(counts["left"]), int(counts["gaps"])
        self.__dict__.update(fresh.__dict__)

    # ------------------------------------------------------------ internals

    def _all_kernels(self) -> list[Kernel]:
        return [part.kernel for part in self._parts] + self._peers.kernels()

    def _grow(self, rows_needed: int) -> None:
        if rows_needed <= self._capacity:
            return
        capacity = max(rows_needed, 2 * self._capacity)
        for part in self._parts:
            part.kernel.grow(capacity)
        self._peers.grow(capacity)
        self._bars_seen = _grown(self._bars_seen, capacity, 0)
        self._last_ts = _grown(self._last_ts, capacity, NO_TS)
        self._last_ordinal = _grown(self._last_ordinal, capacity, -1)
        self._latest = _grown(self._latest, capacity, np.nan)
        self._capacity = capacity


def _grown(array: np.ndarray, capacity: int, fill) -> np.ndarray:
    new = np.full(array.shape[:-1] + (capacity,), fill, dtype=array.dtype)
    new[..., : array.shape[-1]] = array
    return new


def _as_symbols(symbols) -> np.ndarray:
    array = np.asarray(symbols)
    if array.dtype.kind != "U":
        array = array.astype(str)
    return array.reshape(-1)
