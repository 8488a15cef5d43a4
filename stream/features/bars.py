"""Bars as arrays, and the vectorised check of which bars may update state.

The rules and reason names are those of the bar validator
(:func:`stream.decode.bar_problem`), in the same order, so a bar the
validator would dead-letter never reaches a feature state machine. The hot
path works on small integer codes (:data:`DEFECT_REASONS` indexes them);
:func:`bar_defect` gives the names.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from signalml.contracts import MAX_PRICE, MAX_VOLUME, MIN_PRICE

# Code 0 means "accepted"; code i > 0 is REASONS[i].
ACCEPTED = 0
REASONS: tuple[str | None, ...] = (
    None,
    "non_finite",
    "non_positive_price",
    "price_out_of_range",
    "high_below_low",
    "close_out_of_range",
    "open_out_of_range",
    "negative_volume",
    "volume_out_of_range",
    "duplicate_ts",
    "out_of_order_ts",
)
DEFECT_REASONS = REASONS[1:9]  # the bar's own defects, checked without state
CODE = {reason: code for code, reason in enumerate(REASONS) if reason is not None}
DUPLICATE_TS = CODE["duplicate_ts"]
OUT_OF_ORDER_TS = CODE["out_of_order_ts"]


class Bars(NamedTuple):
    """One float64 array [k] per field, aligned by position."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def of(cls, open, high, low, close, volume) -> "Bars":  # noqa: A002 - bar field names
        """Coerce five array-likes to float64 arrays (no copy when already so)."""
        fields = [np.asarray(x, dtype=np.float64) for x in (open, high, low, close, volume)]
        fields = [field if field.ndim == 1 else field.reshape(-1) for field in fields]
        n = len(fields[3])
        if any(len(f) != n for f in fields):
            raise ValueError(f"open/high/low/close/volume lengths differ: {[len(f) for f in fields]}")
        return cls(*fields)

    def take(self, mask_or_index: np.ndarray) -> "Bars":
        return Bars(*(field[mask_or_index] for field in self))


def all_consistent(bars: Bars) -> bool:
    """Every bar has no defect (all :func:`bar_defect_codes` 0): the common
    case, checked with a few reductions instead of one mask per rule.

    ``MIN_PRICE <= low <= min(open, close)`` and ``max(open, close) <= high
    <= MAX_PRICE`` make every price positive, finite and of a plausible
    magnitude, and high >= low (a NaN fails every comparison); then
    ``0 <= volume <= MAX_VOLUME``."""
    low, high = bars.low, bars.high
    return len(low) == 0 or bool(
        low.min() >= MIN_PRICE
        and (np.minimum(bars.open, bars.close) >= low).all()
        and (np.maximum(bars.open, bars.close) <= high).all()
        and high.max() <= MAX_PRICE
        and bars.volume.min() >= 0.0
        and bars.volume.max() <= MAX_VOLUME
    )


def consistent(open: float, high: float, low: float, close: float, volume: float) -> bool:  # noqa: A002
    """:func:`all_consistent` for one bar of Python floats."""
    return MIN_PRICE <= low <= close <= high <= MAX_PRICE and low <= open <= high and 0.0 <= volume <= MAX_VOLUME


def bar_defect_codes(open, high, low, close, volume) -> np.ndarray:  # noqa: A002
    """int8 code [k] of each bar's first defect (0 when the bar is consistent)."""
    o, h, lo, c, v = (np.asarray(x, dtype=np.float64) for x in (open, high, low, close, volume))
    codes = np.zeros(np.shape(c), dtype=np.int8)
    with np.errstate(invalid="ignore"):
        # Later rules overwrite earlier ones, so write them in reverse priority.
        codes[v > MAX_VOLUME] = CODE["volume_out_of_range"]
        codes[v < 0.0] = CODE["negative_volume"]
        codes[(o < lo) | (o > h)] = CODE["open_out_of_range"]
        codes[(c < lo) | (c > h)] = CODE["close_out_of_range"]
        codes[h < lo] = CODE["high_below_low"]
        lowest = np.minimum(np.minimum(o, h), np.minimum(lo, c))
        highest = np.maximum(np.maximum(o, h), np.maximum(lo, c))
        codes[(lowest < MIN_PRICE) | (highest > MAX_PRICE)] = CODE["price_out_of_range"]
        codes[np.minimum(np.minimum(o, h), np.minimum(lo, c)) <= 0.0] = CODE["non_positive_price"]
        finite = np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v)
        codes[~finite] = CODE["non_finite"]
    return codes


def bar_defect(open, high, low, close, volume):  # noqa: A002
    """The reason a bar must not update state, or None.

    Scalars in, ``str | None`` out; arrays in, an object array of
    ``str | None`` out. Same rules and names as the bar validator.
    """
    codes = bar_defect_codes(open, high, low, close, volume)
    if codes.ndim == 0:
        return REASONS[int(codes)]
    names = np.empty(codes.shape, dtype=object)
    for code in np.unique(codes):
        names[codes == code] = REASONS[int(code)]
    return names
