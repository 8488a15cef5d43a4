"""Three of the "101 Formulaic Alphas" (Kakushadze, 2016).

    alpha_1   = rank(Ts_ArgMax(SignedPower((returns < 0 ? stddev(returns, 20) : close), 2), 5)) - 0.5
    alpha_42  = rank((vwap - close) / (vwap + close))
    alpha_101 = (close - open) / ((high - low) + 0.001)

Conventions (the paper leaves them open):

* ``vwap`` is the proxy (high + low + close) / 3: bars carry no traded value.
* alpha_42 is the paper's ``rank(vwap - close) / rank(vwap + close)`` with
  the division by the price level taken per symbol before ranking: ranking
  ``vwap + close`` across symbols ranks price levels, which back-adjusted
  history and a live feed of raw prices do not share (each symbol's history
  is scaled by its own factor). The ratio is scale-free, so both agree.
  (alpha_101 keeps the paper's 0.001, a price amount: it moves the value by
  at most 0.001 / (high - low) of itself.)
* ``returns`` are one-bar close-to-close returns; ``stddev`` is the sample
  standard deviation (ddof = 1) of the last 20 returns, so the inner value
  exists from a symbol's bar 21 and alpha_1 from bar 25.
* ``Ts_ArgMax(x, 5)`` is the 1-based position of the window's maximum,
  oldest first, first occurrence on ties (``rolling(5).apply(np.argmax) + 1``).
* ``rank`` is the cross-sectional percentile rank over the symbols of the
  same bar time (:func:`.ranks.pct_rank`, ties averaged, NaN ignored).

The per-symbol part (:class:`AlphaInputs`) is a state machine like the other
kernels; the ranks need the whole cross-section and are taken by
:func:`combine` over the symbols of one bar time.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Bar, Kernel, KernelStateError, Step, divide
from stream.features.ranks import pct_rank, pct_rank_of, pct_rank_small_ints
from stream.features.volatility import Volatility
from stream.features.window import ring_read, ring_write

ALPHAS = ("alpha_1", "alpha_42", "alpha_101")
STDDEV_BARS = 20
ARGMAX_BARS = 5
_AGES = np.arange(ARGMAX_BARS - 1, -1, -1)  # oldest first

# The per-symbol inputs each alpha needs, in output order.
INPUTS = {
    "alpha_1": ("alpha_1_argmax",),
    "alpha_42": ("alpha_42_ratio",),
    "alpha_101": ("alpha_101",),
}


class AlphaInputs(Kernel):
    """Per-symbol inputs of the configured alphas (see :data:`INPUTS`)."""

    kind = "alpha_inputs"

    def __init__(self, alphas: tuple[str, ...] = ALPHAS, capacity: int = 1):
        unknown = set(alphas) - set(ALPHAS)
        if unknown:
            raise ValueError(f"unknown alphas {sorted(unknown)}; known: {list(ALPHAS)}")
        self.alphas = tuple(alphas)
        self.output_names = tuple(name for alpha in self.alphas for name in INPUTS[alpha])
        warmup = {"alpha_1": STDDEV_BARS + ARGMAX_BARS, "alpha_42": 1, "alpha_101": 1}
        self.warmup_bars = tuple(warmup[alpha] for alpha in self.alphas for _ in INPUTS[alpha])
        self._stddev = Volatility((STDDEV_BARS,), capacity) if "alpha_1" in self.alphas else None
        super().__init__(capacity)

    def params(self):
        return {"alphas": list(self.alphas)}

    def _declare(self):
        return {
            "bars_seen": (np.int64, (), 0),
            "signed_powers": (np.float64, (ARGMAX_BARS,), np.nan),  # bar j in slot j % 5
        }

    def _update(self, step: Step, bars: Bars, out: np.ndarray) -> None:
        column = 0
        for alpha in self.alphas:
            if alpha == "alpha_1":
                self._argmax_input(step, bars, out[column])
            elif alpha == "alpha_42":
                vwap = bars.high + bars.low
                vwap += bars.close
                vwap /= 3.0
                np.subtract(vwap, bars.close, out=out[column])
                out[column] /= np.add(vwap, bars.close, out=vwap)
            else:
                range_ = bars.high - bars.low
                range_ += 0.001
                np.subtract(bars.close, bars.open, out=out[column])
                out[column] /= range_
            column += len(INPUTS[alpha])
        self.bars_seen[step.rows.sel] += 1

    def _argmax_input(self, step: Step, bars: Bars, out: np.ndarray) -> None:
        stddev = np.empty((1, step.rows.size))
        returns = self._stddev.advance(step, bars, stddev)
        stddev = stddev[0]
        inner = np.where(returns < 0.0, stddev, bars.close)
        inner[np.isnan(stddev)] = np.nan  # NaN until the 20-bar stddev exists, whichever branch the bar takes
        ring_write(self.signed_powers, step, np.multiply(inner, np.abs(inner), out=stddev))  # SignedPower(inner, 2)
        # Ts_ArgMax over bars seen-4 .. seen, oldest first, first maximum wins.
        window = ring_read(self.signed_powers, step, _AGES)
        best = window[0]
        higher = np.empty(step.rows.size, dtype=bool)
        position_if_higher = np.empty(step.rows.size)
        out.fill(1.0)
        for position in range(2, ARGMAX_BARS + 1):
            value = window[position - 1]
            np.greater(value, best, out=higher)
            np.maximum(best, value, out=best)  # NaN propagates: any NaN in the window
            # Positions only grow, so taking the larger is setting it where higher,
            # without the branch per element of a masked copy (mispredicted half the time).
            np.maximum(out, np.multiply(higher, float(position), out=position_if_higher), out=out)
        out[np.isnan(best)] = np.nan
        if step.least < ARGMAX_BARS - 1:
            out[step.seen < ARGMAX_BARS - 1] = np.nan

    def _update_one(self, row: int, seen: int, bar: Bar) -> list[float]:
        open_, high, low, close, _ = bar
        out = []
        for alpha in self.alphas:
            if alpha == "alpha_1":
                out.append(self._argmax_input_one(row, seen, close))
            elif alpha == "alpha_42":
                vwap = (high + low + close) / 3.0
                out.append(divide(vwap - close, vwap + close))
            else:
                out.append(divide(close - open_, (high - low) + 0.001))
        self.bars_seen[row] = seen + 1
        return out

    def _argmax_input_one(self, row: int, seen: int, close: float) -> float:
        ret, (stddev,) = self._stddev.advance_one(row, seen, close)
        inner = stddev if ret < 0.0 else close
        if stddev != stddev:
            inner = math.nan
        self.signed_powers[seen % ARGMAX_BARS, row] = inner * abs(inner)  # SignedPower(inner, 2)
        best, position = -math.inf, math.nan
        for age in range(ARGMAX_BARS - 1, -1, -1):
            value = self.signed_powers.item((seen - age) % ARGMAX_BARS, row)
            if value != value:
                return math.nan
            if value > best:
                best, position = value, float(ARGMAX_BARS - age)
        return math.nan if seen < ARGMAX_BARS - 1 else position

    # The nested stddev kernel is part of this state machine's state.
    def grow(self, capacity: int) -> None:
        super().grow(capacity)
        if getattr(self, "_stddev", None) is not None:
            self._stddev.grow(capacity)

    def reset(self, rows=None) -> None:
        super().reset(rows)
        if self._stddev is not None:
            self._stddev.reset(rows)

    def state(self, n_rows: int | None = None) -> dict[str, Any]:
        state = super().state(n_rows)
        if self._stddev is not None:
            state["stddev"] = self._stddev.state(state["rows"])
        return state

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        if self._stddev is not None:
            self._stddev.restore(state["stddev"])
            if not np.array_equal(self._stddev.bars_seen, self.bars_seen):
                raise KernelStateError("alpha_inputs: its stddev state counts other bars than its own")


def combine(alphas: tuple[str, ...], inputs: np.ndarray) -> np.ndarray:
    """The alphas [len(alphas), m] of one bar time's cross-section from the
    per-symbol inputs [n_inputs, m] of exactly the symbols of that bar time."""
    result = np.empty((len(alphas), inputs.shape[1]))
    column = 0
    with np.errstate(all="ignore"):
        for i, alpha in enumerate(alphas):
            if alpha == "alpha_1":
                result[i] = pct_rank_small_ints(inputs[column], ARGMAX_BARS) - 0.5
            elif alpha == "alpha_42":
                result[i] = pct_rank(inputs[column])
            else:
                result[i] = inputs[column]
            column += len(INPUTS[alpha])
    return result


def combine_one(alphas: tuple[str, ...], own: list[float], inputs: np.ndarray) -> list[float]:
    """:func:`combine` of one symbol: its alphas from its inputs ``own``
    [n_inputs] and those of the whole cross-section ``inputs`` [n_inputs, m]
    (its own among them), without sorting."""
    result = []
    column = 0
    for alpha in alphas:
        if alpha == "alpha_1":
            result.append(pct_rank_of(own[column], inputs[column]) - 0.5)
        elif alpha == "alpha_42":
            result.append(pct_rank_of(own[column], inputs[column]))
        else:
            result.append(own[column])
        column += len(INPUTS[alpha])
    return result
