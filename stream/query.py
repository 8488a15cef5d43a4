"""The engine's committed state, read-only: the latest signal, feature vector
and readiness of each symbol, the model set in service, the engine's position.

The engine stages the inputs of each cross-section it prepares
(:meth:`CommittedState.stage`); right after a transaction commits it
publishes that transaction's signals and staged inputs as a new, immutable
:class:`CommittedView` (:meth:`CommittedState.publish`); a rewind to the last
commit drops what was staged (:meth:`CommittedState.discard`). HTTP threads
read ``state.view`` once per request. Replacing that reference is atomic, so
a reader sees one whole view, and a view holds only what a committed
transaction published: an answer never shows a signal that was not
published.

Per commit the engine merges two dicts of references (tens of µs at 500
symbols); the :class:`~signalml.contracts.Signal` objects are built when a
request first reads them. JSON is built at request time; the all-symbols bodies are cached on
the view they belong to, so repeated reads of an unchanged view cost one
lookup.

:class:`QueryApi` turns a view into the HTTP answers (routes for
:class:`~stream.observability.HealthServer`); the OpenAPI description is in
:mod:`stream.query_openapi`.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from itertools import repeat
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import parse_qsl

import msgspec
import numpy as np

from signalml.contracts import SYMBOL_PATTERN, ModelSetManifest, Signal
from stream.query_contracts import (Error, Features, ModelSetInService, Position, Signals, SymbolFeatures,
                                    UnknownSymbols)

SYMBOL = re.compile(SYMBOL_PATTERN)
SYMBOL_LIST = re.compile(f"{SYMBOL_PATTERN}(?:,{SYMBOL_PATTERN})*")
MAX_SYMBOLS = 10_000
MAX_QUERY_FIELDS = 100


@dataclass(frozen=True, eq=False)
class FeatureRows:
    """The model inputs of one cross-section: ``normalized[i]`` (float32, as
    the models see it) and ``raw[i]`` (the feature engine's values, when the
    pipeline provides them) of ``symbols[i]`` at bar time ``ts``;
    ``bars_seen[i]`` bars applied to that symbol so far."""

    ts: int
    symbols: Sequence[str]
    normalized: np.ndarray
    bars_seen: np.ndarray
    raw: np.ndarray | None = None

    @cached_property
    def row_of(self) -> dict[str, int]:
        return {symbol: i for i, symbol in enumerate(self.symbols)}


class LatestSignals(Mapping[str, Signal]):
    """The latest signal of each symbol over committed cross-sections: a
    reference to the cross-section's signals and the symbol's place in it,
    so a commit adds 500 references rather than building 500
    :class:`Signal` objects; each is built where a request reads it
    (:class:`~stream.signals.CrossSectionSignals` builds its objects once)."""

    def __init__(self, previous: LatestSignals | None = None, batches: Sequence[Sequence[Signal]] = ()):
        self._where = dict(previous._where) if previous is not None else {}
        for batch in batches:
            symbols = getattr(batch, "symbols", None)
            if symbols is None:
                symbols = [signal.symbol for signal in batch]
            self._where.update(zip(symbols, zip(repeat(batch), range(len(symbols)))))

    def __getitem__(self, symbol: str) -> Signal:
        batch, index = self._where[symbol]
        return batch[index]

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._where

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


@dataclass(frozen=True, eq=False)
class CommittedView:
    """What the last committed transaction left behind (never mutated;
    ``cache`` holds encoded bodies, built at the first request)."""

    engine_id: str
    commits: int = 0
    committed_at_ms: int | None = None
    last_bar_ts: int | None = None  # the last closed (and committed) bar time
    last_signal_ts: int | None = None
    model_set: ModelSetManifest | None = None
    signals: LatestSignals = field(default_factory=LatestSignals)  # latest per symbol
    features: Mapping[str, FeatureRows] = field(default_factory=dict)  # latest cross-section per symbol
    feature_names: tuple[str, ...] = ()
    warmup_bars: int = 0  # bars a symbol needs before every feature has a value
    cache: dict[str, bytes] = field(default_factory=dict)


def _batch_ts(batch: Sequence[Signal]) -> int:
    ts = getattr(batch, "ts", None)
    return int(ts) if ts is not None else batch[-1].ts


class CommittedState:
    """The engine's committed view and what its open transaction staged.

    ``stage``, ``cut``, ``discard`` and ``publish`` run on the engine thread;
    any thread may read :attr:`view`."""

    def __init__(self, engine_id: str = "", *, clock: Callable[[], float] = time.time):
        self.view = CommittedView(engine_id)
        self.clock = clock
        self._staged: list[FeatureRows] = []
        self._cuts: deque[list[FeatureRows]] = deque()  # what each transaction still to commit staged
        self._names: tuple[str, ...] = ()
        self._warmup_bars = 0

    def stage(self, prepared: Any, features: Any) -> None:
        """A cross-section was prepared (``prepared``: a
        :class:`~stream.pipeline.Prepared`; ``features``: the pipeline's
        :class:`~stream.features.FeatureEngine`, right after the update)."""
        self._staged.append(FeatureRows(prepared.ts, prepared.symbols, prepared.features,
                                        features.bars_seen(prepared.symbols), getattr(prepared, "raw", None)))
        self._names, self._warmup_bars = tuple(features.feature_names), int(features.warmup_bars)

    def cut(self) -> None:
        """The open transaction ends here: what is staged from now on
        belongs to the next one."""
        self._cuts.append(self._staged)
        self._staged = []

    def discard(self) -> None:
        """The open transactions were aborted: what they staged never happened."""
        self._staged = []
        self._cuts.clear()

    def publish(self, batches: Sequence[Sequence[Signal]], model_set: Any, last_bar_ts: int | None) -> None:
        """The oldest open transaction committed ``batches`` (each the signals
        of one cross-section, in bar-time order) and the cross-sections it
        staged (up to its :meth:`cut`; without one, all staged);
        ``model_set`` (a :class:`~stream.model_set.ModelSet` or None) is in
        service and ``last_bar_ts`` is the last closed bar time."""
        if self._cuts:
            staged = self._cuts.popleft()
        else:
            staged, self._staged = self._staged, []
        previous = self.view
        batches = [batch for batch in batches if len(batch)]
        latest = LatestSignals(previous.signals, batches) if batches else previous.signals
        last_signal_ts = _batch_ts(batches[-1]) if batches else previous.last_signal_ts
        features = previous.features
        if staged:
            features = dict(features)
            for rows in staged:
                features.update(dict.fromkeys(rows.symbols, rows))
        # One reference store: a reader sees the previous view or this one, whole.
        self.view = CommittedView(
            engine_id=previous.engine_id,
            commits=previous.commits + 1,
            committed_at_ms=int(self.clock() * 1000),
            last_bar_ts=last_bar_ts,
            last_signal_ts=last_signal_ts,
            model_set=model_set.manifest if model_set is not None else previous.model_set,
            signals=latest,
            features=features,
            feature_names=self._names or previous.feature_names,
            warmup_bars=self._warmup_bars or previous.warmup_bars,
        )


# ---------------------------------------------------------------- requests


class BadRequest(Exception):
    """A parameter is malformed (answered 400)."""


def parse_query(query: str, allowed: Sequence[str]) -> dict[str, list[str]]:
    """The parameters of a query string; unknown names, undecodable bytes and
    more than :data:`MAX_QUERY_FIELDS` fields are a :class:`BadRequest`."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict", max_num_fields=MAX_QUERY_FIELDS)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed query string: {exc}") from None
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in allowed:
            takes = ", ".join(allowed) if allowed else "no parameters"
            raise BadRequest(f"unknown parameter {name!r}; this path takes: {takes}")
        params.setdefault(name, []).append(value)
    return params


def parse_symbols(values: list[str] | None, max_symbols: int = MAX_SYMBOLS) -> list[str] | None:
    """``symbols=A,B`` (the parameter may repeat) as a list without
    duplicates, in the order given; None when absent."""
    if values is None:
        return None
    symbols: dict[str, None] = {}
    for value in values:
        if not SYMBOL_LIST.fullmatch(value):  # one pass for the whole list; find the culprit only on failure
            for i, symbol in enumerate(value.split(",")):
                if not SYMBOL.fullmatch(symbol):
                    shown = symbol if len(symbol) <= 40 else symbol[:40] + "..."
                    what = "an empty symbol" if not symbol else f"symbol {shown!r}"
                    raise BadRequest(f"symbols: {what} at position {i + 1} is not a ticker "
                                     "(1-32 of letters, digits and . _ - / ^ =)")
        symbols.update(dict.fromkeys(value.split(",")))
        if len(symbols) > max_symbols:
            raise BadRequest(f"symbols: more than {max_symbols} symbols")
    return list(symbols)


def _iso(ts_ms: int | None) -> str | None:
    if ts_ms is None:
        return None
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(code: int, message: str) -> tuple[int, Error]:
    return code, Error(message)


# ---------------------------------------------------------------- routes


class QueryApi:
    """The read-only query API over a :class:`CommittedState`.

    ``consumer_lag`` returns the live lag per partition of the bars topic
    (messages); it is the only answer that does not come from the committed
    view."""

    def __init__(self, state: CommittedState, *, consumer_lag: Callable[[], dict[str, int]] | None = None,
                 max_symbols: int = MAX_SYMBOLS, clock: Callable[[], float] = time.time):
        from stream.query_openapi import openapi_document

        self.state = state
        self.consumer_lag = consumer_lag or dict
        self.max_symbols = max_symbols
        self.clock = clock
        self._openapi = msgspec.json.encode(openapi_document())

    def routes(self) -> dict[str, Callable[[str], tuple[int, Any]]]:
        return {
            "/openapi.json": self.openapi,
            "/v1/signals": self.signals,
            "/v1/features": self.features,
            "/v1/model-set": self.model_set,
            "/v1/position": self.position,
        }

    # ------------------------------------------------------------ handlers

    def openapi(self, query: str) -> tuple[int, Any]:
        try:
            parse_query(query, ())
        except BadRequest as exc:
            return _error(400, str(exc))
        return 200, self._openapi

    def signals(self, query: str) -> tuple[int, Any]:
        """The latest committed signal of every symbol, or of ``symbols``."""
        view = self.state.view
        symbols, error = self._requested(view, query, view.signals, "signal")
        if error is not None:
            return error
        if symbols is None:
            body = view.cache.get("signals")
            if body is None:
                body = view.cache["signals"] = msgspec.json.encode(
                    self._signals_body(view, [view.signals[s] for s in sorted(view.signals)]))
            return 200, body
        # The view's signals encoded once each, joined per request.
        encoded = view.cache.get("signal_items")
        if encoded is None:
            encoded = view.cache["signal_items"] = {s: msgspec.json.encode(v) for s, v in view.signals.items()}
        head = msgspec.json.encode(self._signals_body(view, [], count=len(symbols)))[: -len(b"[]}")]
        return 200, b"".join((head, b"[", b",".join([encoded[s] for s in symbols]), b"]}"))

    def features(self, query: str) -> tuple[int, Any]:
        """The latest committed model inputs and readiness of every symbol, or of ``symbols``."""
        view = self.state.view
        symbols, error = self._requested(view, query, view.features, "feature vector")
        if error is not None:
            return error
        if symbols is None:
            body = view.cache.get("features")
            if body is None:
                body = view.cache["features"] = msgspec.json.encode(self._features_body(view, sorted(view.features)))
            return 200, body
        return 200, self._features_body(view, symbols)

    def _requested(self, view, query: str, known, what: str) -> tuple[list[str] | None, tuple[int, Any] | None]:
        """The symbols a query asks for (None: all of them), or the 4xx answer
        for a bad parameter or a symbol ``known`` lacks."""
        try:
            symbols = parse_symbols(parse_query(query, ("symbols",)).get("symbols"), self.max_symbols)
        except BadRequest as exc:
            return None, _error(400, str(exc))
        missing = [s for s in symbols or () if s not in known]
        if missing:
            return None, self._unknown(view, missing, what)
        return symbols, None

    def model_set(self, query: str) -> tuple[int, Any]:
        """The model set in service at the last commit, with its manifest."""
        view = self.state.view
        try:
            parse_query(query, ())
        except BadRequest as exc:
            return _error(400, str(exc))
        if view.model_set is None:
            return _error(404, "no model set is in service yet (none published, or Triton cannot serve it yet)")
        return 200, ModelSetInService(view.engine_id, view.model_set.model_set, view.model_set)

    def position(self, query: str) -> tuple[int, Any]:
        """Where the engine stands: last committed bar time, and how far behind it is."""
        view = self.state.view
        try:
            parse_query(query, ())
        except BadRequest as exc:
            return _error(400, str(exc))
        now_ms = int(self.clock() * 1000)
        lag = {str(p): int(n) for p, n in self.consumer_lag().items()}
        return 200, Position(
            engine_id=view.engine_id,
            commits=view.commits,
            committed_at_ms=view.committed_at_ms,
            seconds_since_commit=None if view.committed_at_ms is None else (now_ms - view.committed_at_ms) / 1000,
            last_bar_time_ms=view.last_bar_ts,
            last_bar_time=_iso(view.last_bar_ts),
            bar_time_lag_s=None if view.last_bar_ts is None else (now_ms - view.last_bar_ts) / 1000,
            last_signal_ts=view.last_signal_ts,
            model_set=view.model_set.model_set if view.model_set is not None else None,
            symbols=len(view.features),
            consumer_lag=lag,
            consumer_lag_total=sum(lag.values()),
        )

    # ------------------------------------------------------------ bodies

    @staticmethod
    def _signals_body(view: CommittedView, signals: list[Signal], count: int | None = None) -> Signals:
        return Signals(
            engine_id=view.engine_id,
            ts=view.last_signal_ts,
            model_set=view.model_set.model_set if view.model_set is not None else None,
            count=len(signals) if count is None else count,
            signals=signals,
        )

    @staticmethod
    def _features_body(view: CommittedView, symbols: list[str]) -> Features:
        out = []
        for symbol in symbols:
            rows = view.features[symbol]
            i = rows.row_of[symbol]
            bars_seen = int(rows.bars_seen[i])
            out.append(SymbolFeatures(
                symbol=symbol,
                ts=rows.ts,
                ready=bars_seen >= view.warmup_bars,
                bars_seen=bars_seen,
                normalized=rows.normalized[i].tolist(),
                raw=None if rows.raw is None else rows.raw[i].tolist(),
            ))
        return Features(
            engine_id=view.engine_id,
            feature_names=list(view.feature_names),
            warmup_bars=view.warmup_bars,
            count=len(out),
            symbols=out,
        )

    @staticmethod
    def _unknown(view: CommittedView, missing: list[str], what: str) -> tuple[int, UnknownSymbols]:
        known = [s for s in missing if s in view.features]
        unknown = [s for s in missing if s not in view.features]
        parts = []
        if unknown:
            parts.append(f"unknown symbol(s): {', '.join(unknown[:20])}" + (" ..." if len(unknown) > 20 else ""))
        if known:
            parts.append(f"no committed {what} yet for {', '.join(known[:20])}" + (" ..." if len(known) > 20 else "")
                         + " (warm-up, or no model set in service)")
        return 404, UnknownSymbols("; ".join(parts), missing)


def query_routes(state: CommittedState, metrics: Any = None) -> dict[str, Callable[[str], tuple[int, Any]]]:
    """The routes of the query API; ``metrics`` (the engine's
    :class:`~stream.observability.EngineMetrics`) supplies the consumer lag."""
    def lag() -> dict[str, int]:
        out = {}
        for metric in metrics.consumer_lag.collect():
            for sample in metric.samples:
                out[sample.labels["partition"]] = int(sample.value)
        return out

    return QueryApi(state, consumer_lag=lag if metrics is not None else None).routes()
