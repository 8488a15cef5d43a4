"""The answers of the engine's query API (:mod:`stream.query`), as typed
structs: the handlers build them, msgspec encodes them, and the OpenAPI
description (:mod:`stream.query_openapi`) is generated from them, so the
document cannot drift from what is served.

Every field is always written (``null`` where there is no value); a float
that is not finite is written as ``null`` too, as msgspec encodes it.
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta, Struct

from signalml.contracts import EpochMs, ModelSetManifest, Signal, Symbol

Count = Annotated[int, Meta(ge=0)]


class Error(Struct, frozen=True):
    """A request that cannot be answered (4xx)."""

    error: Annotated[str, Meta(description="what was wrong")]


class UnknownSymbols(Struct, frozen=True):
    """Symbols of the request with no committed value (unknown, or still in warm-up)."""

    error: str
    unknown: list[str]


class Signals(Struct, frozen=True):
    """The latest committed signal of each symbol asked for."""

    engine_id: str
    ts: Annotated[EpochMs | None, Meta(description="bar time of the last committed signals")]
    model_set: str | None
    count: Count
    signals: list[Signal]  # last: the list route joins pre-encoded signals into the encoded head


class SymbolFeatures(Struct, frozen=True):
    """One symbol's latest committed model input and readiness."""

    symbol: Symbol
    ts: EpochMs
    ready: Annotated[bool, Meta(description="every feature has a value (bars_seen >= warmup_bars)")]
    bars_seen: Count
    normalized: Annotated[list[float], Meta(
        description="the model input: features normalised across the cross-section, float32")]
    raw: Annotated[list[float] | None, Meta(description="the feature engine's values before normalisation")]


class Features(Struct, frozen=True):
    """The latest committed feature vectors of each symbol asked for."""

    engine_id: str
    feature_names: list[str]
    warmup_bars: Count
    count: Count
    symbols: list[SymbolFeatures]


class ModelSetInService(Struct, frozen=True):
    """The model set in service at the last commit, with its manifest."""

    engine_id: str
    model_set: str
    manifest: ModelSetManifest


class Position(Struct, frozen=True):
    """Where the engine stands: its last commit, and how far behind it is."""

    engine_id: str
    commits: Annotated[Count, Meta(description="transactions committed since start")]
    committed_at_ms: EpochMs | None
    seconds_since_commit: float | None
    last_bar_time_ms: Annotated[EpochMs | None, Meta(description="last committed bar time")]
    last_bar_time: Annotated[str | None, Meta(description="the same, ISO 8601 UTC")]
    bar_time_lag_s: Annotated[float | None, Meta(description="wall clock now minus the last committed bar time")]
    last_signal_ts: EpochMs | None
    model_set: str | None
    symbols: Count
    consumer_lag: Annotated[dict[str, Count], Meta(
        description="live: bars not yet consumed, per partition of the bars topic")]
    consumer_lag_total: Count


ANSWERS = (Error, UnknownSymbols, Signals, Features, ModelSetInService, Position)
