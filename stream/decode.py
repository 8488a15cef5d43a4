"""Decode and validate bars: bytes in, a :class:`Bar` or a :class:`Rejection` out.

Nothing here raises on bad input. Every way a message can be wrong maps to
one reason code (see :data:`REASONS`), with a human-readable detail, so the
caller can dead-letter it and count it.

Two layers:

* :func:`decode_bar` is stateless: parse, types, field constraints, and the
  bar's own consistency (finite positive prices, ``low <= close <= high``...).
* :class:`BarValidator` adds the per-symbol order: a ``ts`` equal to the
  symbol's last accepted one is a duplicate, an earlier one is out of order.
  The engine checks each decoded bar against its stream (a bar time too far
  ahead, :mod:`stream.admission`) between :meth:`BarValidator.decode` and
  :meth:`BarValidator.admit`, so that a rejected bar never moves its
  symbol's clock.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections import Counter
from typing import Any

import msgspec

from signalml.contracts import MAX_PRICE, MAX_VOLUME, MIN_PRICE, Bar, DeadLetter, decoder, encode

MAX_MESSAGE_BYTES = 4096

REASONS = (
    "too_large",
    "unparseable",
    "missing_field",
    "wrong_type",
    "invalid_value",
    "non_finite",
    "non_positive_price",
    "price_out_of_range",
    "high_below_low",
    "open_out_of_range",
    "close_out_of_range",
    "negative_volume",
    "volume_out_of_range",
    "duplicate_ts",
    "out_of_order_ts",
    "ts_ahead_of_stream",
)


def dead_letter(rejection: "Rejection", original: bytes, **source: str | int | None) -> bytes:
    """The encoded :class:`DeadLetter` of a rejected message. ``source`` is
    ``source_topic``/``source_partition``/``source_offset`` (a Kafka
    position) or ``source_file``/``source_row``."""
    return encode(
        DeadLetter(
            reason=rejection.reason,
            detail=rejection.detail,
            original_b64=base64.b64encode(original).decode(),
            rejected_at=int(time.time() * 1000),
            symbol=rejection.symbol,
            ts=rejection.ts,
            **source,
        )
    )


class Rejection(msgspec.Struct, frozen=True):
    """Why a message is not a valid bar. ``reason`` is one of :data:`REASONS`."""

    reason: str
    detail: str
    symbol: str | None = None
    ts: int | None = None


_bar_decoder = decoder(Bar)
_loose_decoder = msgspec.json.Decoder()  # for salvaging symbol/ts of a bad message


def decode_bar(data: bytes | bytearray | memoryview) -> Bar | Rejection:
    """Parse one JSON bar message and check it on its own (no ordering)."""
    try:
        if len(data) > MAX_MESSAGE_BYTES:
            return Rejection("too_large", f"{len(data)} bytes > limit {MAX_MESSAGE_BYTES}")
        try:
            bar = _bar_decoder.decode(data)
        except msgspec.ValidationError as exc:
            symbol, ts = _salvage(data)
            return Rejection(_validation_reason(str(exc)), str(exc), symbol, ts)
        except msgspec.DecodeError as exc:
            bar = _decode_lenient(data)
            if bar is None:
                return Rejection("unparseable", str(exc))
        problem = bar_problem(bar.open, bar.high, bar.low, bar.close, bar.volume)
        if problem is not None:
            return Rejection(problem[0], problem[1], bar.symbol, bar.ts)
        return bar
    except Exception as exc:  # noqa: BLE001 - a decoder must never take the loop down
        return Rejection("unparseable", f"{type(exc).__name__}: {exc}")


def bar_problem(
    open_: float, high: float, low: float, close: float, volume: float
) -> tuple[str, str] | None:
    """The first consistency problem of one bar as (reason, detail), or None."""
    # Fast path for the common, valid bar: NaN fails every comparison and
    # the bounds are finite, so this accepts only finite, positive,
    # consistent bars of a plausible magnitude.
    if MIN_PRICE <= low <= close <= high <= MAX_PRICE and low <= open_ <= high and 0.0 <= volume <= MAX_VOLUME:
        return None
    values = (open_, high, low, close, volume)
    if not all(math.isfinite(v) for v in values):
        names = ("open", "high", "low", "close", "volume")
        bad = [n for n, v in zip(names, values) if not math.isfinite(v)]
        return "non_finite", f"non-finite {', '.join(bad)}"
    if min(open_, high, low, close) <= 0.0:
        return "non_positive_price", f"prices must be > 0 (open={open_}, high={high}, low={low}, close={close})"
    if min(open_, high, low, close) < MIN_PRICE or max(open_, high, low, close) > MAX_PRICE:
        return ("price_out_of_range", f"prices must lie in [{MIN_PRICE:g}, {MAX_PRICE:g}] "
                f"(open={open_}, high={high}, low={low}, close={close})")
    if high < low:
        return "high_below_low", f"high {high} < low {low}"
    if not low <= close <= high:
        return "close_out_of_range", f"close {close} outside [low {low}, high {high}]"
    if not low <= open_ <= high:
        return "open_out_of_range", f"open {open_} outside [low {low}, high {high}]"
    if volume < 0.0:
        return "negative_volume", f"volume {volume} < 0"
    if volume > MAX_VOLUME:
        return "volume_out_of_range", f"volume {volume} > {MAX_VOLUME:g}"
    return None


def _decode_lenient(data: bytes | bytearray | memoryview) -> Bar | None:
    """Producers that write JSON with Python's ``json`` emit ``NaN`` and
    ``Infinity``, which strict JSON (and msgspec) refuse. Parse those with
    ``json`` so the bar is rejected for its real defect, a non-finite value."""
    try:
        obj = json.loads(bytes(data))
        return msgspec.convert(obj, Bar)
    except Exception:  # noqa: BLE001
        return None


def _validation_reason(message: str) -> str:
    if message.startswith("Number out of range"):
        return "non_finite"
    if "missing required field" in message:
        return "missing_field"
    if "Expected `object`" in message or "got `" in message:
        return "wrong_type"
    return "invalid_value"  # length, range or pattern constraints


def _salvage(data: bytes | bytearray | memoryview) -> tuple[str | None, int | None]:
    """Best-effort symbol and ts of a message that failed validation, so the
    dead letter can be filtered by symbol."""
    try:
        obj: Any = _loose_decoder.decode(data)
    except Exception:  # noqa: BLE001
        return None, None
    if not isinstance(obj, dict):
        return None, None
    symbol = obj.get("symbol")
    ts = obj.get("ts")
    symbol = symbol[:32] if isinstance(symbol, str) else None
    ts = ts if isinstance(ts, int) and not isinstance(ts, bool) and abs(ts) < 2**63 else None
    return symbol, ts


class BarValidator:
    """Stateful validation: decode, check, and enforce increasing ``ts`` per symbol.

    Only accepted bars move a symbol's last ``ts``. ``counts`` holds the
    number of rejections per reason. ``state()`` / ``restore()`` round-trip
    as plain data so the engine can snapshot it with its features.
    """

    def __init__(self) -> None:
        self.last_ts: dict[str, int] = {}
        self.counts: Counter[str] = Counter()
        self.accepted = 0

    def validate(self, data: bytes | bytearray | memoryview) -> Bar | Rejection:
        """Decode, check and order one message (:meth:`decode` then :meth:`admit`)."""
        result = self.decode(data)
        return self.admit(result) if isinstance(result, Bar) else result

    def decode(self, data: bytes | bytearray | memoryview) -> Bar | Rejection:
        """The stateless part: :func:`decode_bar`, a rejection counted. The
        engine checks the bar against its stream between this and :meth:`admit`."""
        result = decode_bar(data)
        if isinstance(result, Rejection):
            self.count(result)
        return result

    def admit(self, bar: Bar) -> Bar | Rejection:
        """The per-symbol order; an accepted bar moves its symbol's clock."""
        result = self.check_order(bar)
        if isinstance(result, Rejection):
            self.count(result)
        else:
            self.accepted += 1
        return result

    def count(self, rejection: Rejection) -> None:
        self.counts[rejection.reason] += 1

    def check_order(self, bar: Bar) -> Bar | Rejection:
        last = self.last_ts.get(bar.symbol)
        if last is not None and bar.ts <= last:
            reason = "duplicate_ts" if bar.ts == last else "out_of_order_ts"
            return Rejection(reason, f"ts {bar.ts} <= last accepted {last} for {bar.symbol}", bar.symbol, bar.ts)
        self.last_ts[bar.symbol] = bar.ts
        return bar

    def reset(self) -> None:
        self.__init__()

    def state(self) -> dict[str, Any]:
        return {"version": 1, "last_ts": dict(self.last_ts), "counts": dict(self.counts), "accepted": self.accepted}

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("version") != 1:
            raise ValueError(f"unknown BarValidator state version {state.get('version')!r}")
        self.last_ts = {str(k): int(v) for k, v in state["last_ts"].items()}
        self.counts = Counter({str(k): int(v) for k, v in state["counts"].items()})
        self.accepted = int(state["accepted"])
