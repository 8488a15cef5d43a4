"""Features of a symbol that depend on the other symbols of its bar time.

Two families: the alphas (cross-sectional ranks, :mod:`.alphas`) and the
market regressions (the market return is the mean over the cross-section,
:mod:`.us_equity.market`). For each, a kernel keeps per-symbol state and
outputs per-symbol *inputs*; this part keeps every symbol's latest inputs
and combines those of the symbols of one bar time into the features, over
the symbols applied at that time so far (final once all are in).

It also keeps the market clock: when a later bar time begins, the newest one
is complete, so its market return is final and each of its symbols' market
state learns it (:meth:`begin`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stream.features.alphas import INPUTS, combine as combine_alphas, combine_one as combine_alphas_one
from stream.features.bars import Bars
from stream.features.codec import decode_array, encode_array
from stream.features.kernel import Bar, Kernel, Step
from stream.features.layout import Plan
from stream.features.rows import Rows
from stream.features.us_equity import market

NO_TS = np.iinfo(np.int64).min


class CrossSectionalFeatures:
    def __init__(self, plan: Plan):
        self.alphas = plan.alphas
        self.alpha_inputs = plan.alpha_inputs
        self.market_windows = np.asarray(plan.market_windows, dtype=np.int64)
        self.market_inputs = plan.market_inputs
        self.columns = np.concatenate([plan.alpha_columns, plan.market_columns[plan.market_columns >= 0]])
        self._market_picked = np.flatnonzero(plan.market_columns >= 0)
        self._n_alpha_inputs = plan.n_alpha_inputs
        self._n_inputs = plan.n_inputs
        self._market_rows = np.arange(self._n_alpha_inputs, self._n_inputs, dtype=np.int64)
        self._own_return_row = self._n_inputs - 1
        self.clock = market.MarketClock()
        self.latest_inputs = np.full((self._n_inputs, 0), np.nan)
        self._one_inputs = np.empty((self._n_inputs, 1))

    @property
    def active(self) -> bool:
        return len(self.columns) > 0

    def kernels(self) -> list[Kernel]:
        return [k for k in (self.alpha_inputs, self.market_inputs) if k is not None]

    def grow(self, capacity: int) -> None:
        new = np.full((self._n_inputs, capacity), np.nan)
        new[:, : self.latest_inputs.shape[1]] = self.latest_inputs
        self.latest_inputs = new
        for kernel in self.kernels():
            kernel.grow(capacity)

    def forget(self, row: int) -> None:
        self.latest_inputs[:, row] = np.nan
        for kernel in self.kernels():
            kernel.reset([row])

    # ------------------------------------------------------------ updates

    def begin(self, ts: int, newest_ts: int, last_ts: np.ndarray) -> None:
        """Before applying bars of ``ts``: if it is a new bar time, the newest
        one so far (``newest_ts``; ``last_ts`` [n] per row) is complete."""
        if self.market_inputs is None or ts <= newest_ts or newest_ts == NO_TS:
            return
        members = np.flatnonzero(last_ts == newest_ts)
        final = market.market_return(self.latest_inputs[self._own_return_row, members])
        self.clock.close(newest_ts, final)
        self.market_inputs.settle(members, final)

    def apply(self, step: Step, bars: Bars) -> None:
        """Update the input kernels for the rows of ``step``."""
        rows = step.rows
        inputs = rows.pick(self.latest_inputs)
        if self.alpha_inputs is not None:
            self.alpha_inputs._update(step, bars, inputs[: self._n_alpha_inputs])
        if self.market_inputs is not None:
            self.market_inputs.advance(rows.index, step.seen, bars, inputs, self._market_rows)
        rows.put_back(self.latest_inputs, inputs)

    def apply_one(self, row: int, seen: int, bar: Bar) -> None:
        if self.alpha_inputs is not None:
            self.latest_inputs[: self._n_alpha_inputs, row] = self.alpha_inputs._update_one(row, seen, bar)
        if self.market_inputs is not None:
            self.market_inputs.advance_one(row, seen, bar, self._one_inputs, self._market_rows)
            self.latest_inputs[self._n_alpha_inputs :, row] = self._one_inputs[self._n_alpha_inputs :, 0]

    def late(self, ts: int, rows: np.ndarray) -> None:
        """Bars of ``rows`` at ``ts`` came after a later bar time began: their
        bar time's market return is the one it closed with."""
        if self.market_inputs is not None:
            self.market_inputs.settle(rows, self.clock.closed_return(ts))

    # ------------------------------------------------------------ values

    def values(self, ts: int, newest_ts: int, members: Rows) -> np.ndarray:
        """The features [len(columns), m] of ``members``, the rows whose latest
        bar is at ``ts`` (all of them)."""
        inputs = members.pick(self.latest_inputs)
        parts = []
        if self.alphas:
            parts.append(combine_alphas(self.alphas, inputs[: self._n_alpha_inputs]))
        if self.market_inputs is not None:
            final = self._market_return(ts, newest_ts, inputs[-1])
            market_inputs = np.ascontiguousarray(inputs[self._n_alpha_inputs :])
            parts.append(market.combine(self.market_windows, final, market_inputs)[self._market_picked])
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def values_one(self, ts: int, newest_ts: int, row: int, members: np.ndarray) -> list[float]:
        """:meth:`values` of one row, ranked among ``members`` (rows at ``ts``,
        the row among them) by counting rather than sorting."""
        result: list[float] = []
        own = self.latest_inputs[:, row]
        if self.alphas:
            result += combine_alphas_one(self.alphas, own[: self._n_alpha_inputs].tolist(),
                                         self.latest_inputs[: self._n_alpha_inputs, members])
        if self.market_inputs is not None:
            final = self._market_return(ts, newest_ts, self.latest_inputs[self._own_return_row, members])
            values = market.combine(self.market_windows, final, np.ascontiguousarray(own[self._n_alpha_inputs :, None]))
            result += values[self._market_picked, 0].tolist()
        return result

    def _market_return(self, ts: int, newest_ts: int, own_returns: np.ndarray) -> float:
        if ts < newest_ts:
            return self.clock.closed_return(ts)
        return market.market_return(own_returns)

    # ------------------------------------------------------------ snapshot

    def state(self, n: int) -> dict[str, Any]:
        return {"latest_inputs": encode_array(self.latest_inputs[:, :n]), "market_clock": self.clock.state()}

    def restore(self, state: dict[str, Any], n: int) -> None:
        self.latest_inputs[:, :n] = decode_array(state["latest_inputs"])
        self.clock.restore(state["market_clock"])


__all__ = ["CrossSectionalFeatures", "INPUTS"]
