"""The OpenAPI 3 description of the engine's query API (:mod:`stream.query`),
served at ``/openapi.json``. ``/metrics``, ``/health`` and ``/ready`` are
served beside it and described in the README."""

from __future__ import annotations

from typing import Any

import signalml

NUMBER_OR_NULL = {"type": "number", "nullable": True}  # a non-finite value is written as null
SYMBOL = {"type": "string", "pattern": r"^[A-Za-z0-9._\-/^=]{1,32}$"}
EPOCH_MS = {"type": "integer", "minimum": 0, "description": "epoch milliseconds, UTC"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


SYMBOLS_PARAM = {
    "name": "symbols",
    "in": "query",
    "required": False,
    "description": "Comma-separated tickers (the parameter may repeat); without it, every symbol. "
                   "Duplicates are ignored; at most 10,000.",
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._\-/^=]{1,32}(,[A-Za-z0-9._\-/^=]{1,32})*$"},
    "example": "AAPL,MSFT",
}

BAD_REQUEST = _json(_ref("Error"), "A parameter is malformed or unknown")
NOT_FOUND = _json(_ref("UnknownSymbols"), "A symbol has no committed value (unknown, or still in warm-up)")


def _operation(operation_id: str, summary: str, ok: dict, *, symbols: bool = False, not_found: dict | None = None) -> dict:
    responses = {"200": ok, "400": BAD_REQUEST}
    if not_found is not None:
        responses["404"] = not_found
    return {"get": {
        "operationId": operation_id,
        "summary": summary,
        "parameters": [SYMBOLS_PARAM] if symbols else [],
        "responses": responses,
    }}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "description": "what was wrong"}},
    },
    "UnknownSymbols": {
        "type": "object",
        "required": ["error", "unknown"],
        "properties": {"error": {"type": "string"}, "unknown": {"type": "array", "items": {"type": "string"}}},
    },
    "Signal": {
        "type": "object",
        "description": "The signal contract of the signals topic (signalml.contracts.Signal).",
        "required": ["ts", "symbol", "score", "rank", "members", "model_set", "cross_section_size", "horizon_bars"],
        "properties": {
            "ts": EPOCH_MS,
            "symbol": SYMBOL,
            "score": NUMBER_OR_NULL,
            "rank": {**NUMBER_OR_NULL, "description": "percentile of score in its cross-section, (0, 1]"},
            "members": {"type": "object", "additionalProperties": NUMBER_OR_NULL},
            "model_set": {"type": "string"},
            "cross_section_size": {"type": "integer", "minimum": 0},
            "horizon_bars": {"type": "integer"},
        },
    },
    "Signals": {
        "type": "object",
        "required": ["engine_id", "ts", "model_set", "count", "signals"],
        "properties": {
            "engine_id": {"type": "string"},
            "ts": {**EPOCH_MS, "nullable": True, "description": "bar time of the last committed signals"},
            "model_set": {"type": "string", "nullable": True},
            "count": {"type": "integer", "minimum": 0},
            "signals": {"type": "array", "items": _ref("Signal")},
        },
    },
    "SymbolFeatures": {
        "type": "object",
        "required": ["symbol", "ts", "ready", "bars_seen", "normalized", "raw"],
        "properties": {
            "symbol": SYMBOL,
            "ts": EPOCH_MS,
            "ready": {"type": "boolean", "description": "every feature has a value (bars_seen >= warmup_bars)"},
            "bars_seen": {"type": "integer", "minimum": 0},
            "normalized": {"type": "array", "items": NUMBER_OR_NULL,
                           "description": "the model input: features normalised across the cross-section, float32"},
            "raw": {"type": "array", "items": NUMBER_OR_NULL, "nullable": True,
                    "description": "the feature engine's values before normalisation"},
        },
    },
    "Features": {
        "type": "object",
        "required": ["engine_id", "feature_names", "warmup_bars", "count", "symbols"],
        "properties": {
            "engine_id": {"type": "string"},
            "feature_names": {"type": "array", "items": {"type": "string"}},
            "warmup_bars": {"type": "integer", "minimum": 0},
            "count": {"type": "integer", "minimum": 0},
            "symbols": {"type": "array", "items": _ref("SymbolFeatures")},
        },
    },
    "ModelSet": {
        "type": "object",
        "required": ["engine_id", "model_set", "manifest"],
        "properties": {
            "engine_id": {"type": "string"},
            "model_set": {"type": "string"},
            "manifest": {"type": "object", "description": "the model-set manifest (signalml.contracts.ModelSetManifest)",
                         "required": ["model_set", "members", "ensemble_method", "feature_names"]},
        },
    },
    "Position": {
        "type": "object",
        "required": ["engine_id", "commits", "last_bar_time_ms", "consumer_lag", "consumer_lag_total"],
        "properties": {
            "engine_id": {"type": "string"},
            "commits": {"type": "integer", "minimum": 0, "description": "transactions committed since start"},
            "committed_at_ms": {**EPOCH_MS, "nullable": True},
            "seconds_since_commit": NUMBER_OR_NULL,
            "last_bar_time_ms": {**EPOCH_MS, "nullable": True, "description": "last committed bar time"},
            "last_bar_time": {"type": "string", "nullable": True, "description": "the same, ISO 8601 UTC"},
            "bar_time_lag_s": {**NUMBER_OR_NULL, "description": "wall clock now minus the last committed bar time"},
            "last_signal_ts": {**EPOCH_MS, "nullable": True},
            "model_set": {"type": "string", "nullable": True},
            "symbols": {"type": "integer", "minimum": 0},
            "consumer_lag": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
                             "description": "live: bars not yet consumed, per partition of the bars topic"},
            "consumer_lag_total": {"type": "integer", "minimum": 0},
        },
    },
}


def openapi_document() -> dict:
    """The OpenAPI 3.0 document (plain data)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "SignalML engine query API",
            "version": signalml.__version__,
            "description": "Read-only answers from the engine's last committed transaction: never a signal that "
                           "was not published. Served with /metrics, /health and /ready on serving.http_host "
                           "(loopback by default) and serving.http_port.",
        },
        "paths": {
            "/v1/signals": _operation("latestSignals", "Latest committed signal of each symbol",
                                      _json(_ref("Signals"), "The signals"), symbols=True, not_found=NOT_FOUND),
            "/v1/features": _operation("latestFeatures", "Latest committed feature vector and readiness of each symbol",
                                       _json(_ref("Features"), "The feature vectors"), symbols=True,
                                       not_found=NOT_FOUND),
            "/v1/model-set": _operation("modelSet", "The model set in service and its manifest",
                                        _json(_ref("ModelSet"), "The model set"),
                                        not_found=_json(_ref("Error"), "No model set is in service yet")),
            "/v1/position": _operation("position", "The engine's position: last committed bar time and lag",
                                       _json(_ref("Position"), "The position")),
            "/openapi.json": _operation("openapi", "This document", _json({"type": "object"}, "OpenAPI 3 document")),
        },
        "components": {"schemas": SCHEMAS},
    }
