"""Versioned plain-data snapshots of the feature engine, and their bytes.

A snapshot is a dict of plain data (strings, numbers, lists, dicts; arrays as
base64 of little-endian bytes, see :mod:`.codec`), so it encodes with
msgspec or json and restores bit for bit; no pickle. Its header names the
schema and its version: a reader refuses versions it does not know rather
than guess at their meaning.
"""

from __future__ import annotations

from typing import Any

import msgspec

from signalml.errors import SignalMLError

SCHEMA = "signalml.features.engine"
SCHEMA_VERSION = 2  # 2: feature selection, cross-sectional part with the market clock


class SnapshotError(SignalMLError, ValueError):
    """A snapshot cannot be restored here (wrong schema, other settings, damage)."""


class SnapshotVersionError(SnapshotError):
    """The snapshot's schema version is not one this build can read."""


def header() -> dict[str, Any]:
    return {"schema": SCHEMA, "version": SCHEMA_VERSION}


def check_header(state: Any) -> None:
    if not isinstance(state, dict) or state.get("schema") != SCHEMA:
        found = state.get("schema") if isinstance(state, dict) else type(state).__name__
        raise SnapshotError(f"not a feature engine snapshot: schema {found!r}, expected {SCHEMA!r}")
    version = state.get("version")
    if version != SCHEMA_VERSION:
        raise SnapshotVersionError(
            f"feature engine snapshot version {version!r} is not supported; this build reads version {SCHEMA_VERSION}"
        )


def dumps(state: dict[str, Any]) -> bytes:
    """Snapshot → JSON bytes."""
    return msgspec.json.encode(state)


def loads(data: bytes | bytearray | memoryview | str) -> dict[str, Any]:
    """JSON bytes → snapshot (header checked)."""
    try:
        state = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise SnapshotError(f"feature engine snapshot is not valid JSON: {exc}") from None
    check_header(state)
    return state
