"""Three of the "101 Formulaic Alphas" (Kakushadze, 2016).

    alpha_1   = rank(Ts_ArgMax(SignedPower((returns < 0 ? stddev(returns, 20) : close), 2), 5)) - 0.5
    alpha_42  = rank(vwap - close) / rank(vwap + close)
    alpha_101 = (close - open) / ((high - low) + 0.001)

Conventions (the paper leaves them open):

* ``vwap`` is the proxy (high + low + close) / 3: bars carry no traded value.
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

from typing import Any

import numpy as np

from stream.features.bars import Bars
from stream.features.kernel import Kernel
from stream.features.ranks import pct_rank, pct_rank_small_ints
from stream.features.rows import Rows
from stream.features.volatility import Volatility

ALPHAS = ("alpha_1", "alpha_42", "alpha_101")
STDDEV_BARS = 20
ARGMAX_BARS = 5

# The per-symbol inputs each alpha needs, in output order.
INPUTS = {
    "alpha_1": ("alpha_1_argmax",),
    "alpha_42": ("alpha_42_vwap_minus_close", "alpha_42_vwap_plus_close"),
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

    def _update(self, rows: Rows, bars: Bars, out: np.ndarray) -> None:
        sel = rows.sel
        seen = self.bars_seen[sel]
        column = 0
        for alpha in self.alphas:
            if alpha == "alpha_1":
                self._argmax_input(rows, bars, seen, out[column])
            elif alpha == "alpha_42":
                vwap = (bars.high + bars.low + bars.close) / 3.0
                np.subtract(vwap, bars.close, out=out[column])
                np.add(vwap, bars.close, out=out[column + 1])
            else:
                np.divide(bars.close - bars.open, (bars.high - bars.low) + 0.001, out=out[column])
            column += len(INPUTS[alpha])
        self.bars_seen[sel] = seen + 1

    def _argmax_input(self, rows: Rows, bars: Bars, seen: np.ndarray, out: np.ndarray) -> None:
        # Before the stddev kernel moves its previous close on (on contiguous
        # rows its state arrays are views).
        returns = bars.close / self._stddev.prev_close[rows.sel] - 1.0
        stddev = np.empty((1, rows.size))
        self._stddev._update(rows, bars, stddev)
        stddev = stddev[0]
        # NaN until the 20-bar stddev exists, whichever branch the bar takes.
        inner = np.where(returns < 0.0, stddev, bars.close)
        inner[np.isnan(stddev)] = np.nan
        signed_power = np.sign(inner) * np.abs(inner) ** 2
        flat = self.signed_powers.reshape(-1)
        flat[(seen % ARGMAX_BARS) * self._capacity + rows.index] = signed_power
        # Ts_ArgMax over bars seen-4 .. seen, oldest first, first maximum wins.
        position = seen % ARGMAX_BARS
        best = np.full(rows.size, -np.inf)
        out[:] = np.nan
        incomplete = seen < ARGMAX_BARS - 1
        for age in range(ARGMAX_BARS - 1, -1, -1):  # oldest first
            slot = position - age
            slot[slot < 0] += ARGMAX_BARS
            value = flat.take(slot * self._capacity + rows.index)
            higher = value > best
            np.maximum(best, value, out=best)  # NaN propagates: any NaN in the window
            out[higher] = ARGMAX_BARS - age
            incomplete |= np.isnan(value)
        out[incomplete] = np.nan

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
                result[i] = pct_rank(inputs[column]) / pct_rank(inputs[column + 1])
            else:
                result[i] = inputs[column]
            column += len(INPUTS[alpha])
    return result
