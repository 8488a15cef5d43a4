"""numpy arrays as plain data: dtype, shape and the little-endian bytes.

Plain data (dicts, lists, numbers, strings, bytes) survives msgpack bit for
bit, and JSON too: msgspec writes ``bytes`` as base64 there, and
:func:`decode_array` takes either form back. So a restored state continues
exactly whichever encoding carried it.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def encode_array(array: np.ndarray) -> dict[str, Any]:
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {"dtype": little.dtype.str, "shape": list(little.shape), "data": little.tobytes()}


def decode_array(data: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(data["dtype"])
    if dtype.kind not in "biuf":
        raise ValueError(f"refusing to decode an array of dtype {dtype.str!r}")
    array = np.frombuffer(array_bytes(data["data"]), dtype=dtype).reshape(tuple(data["shape"]))
    return array.astype(dtype.newbyteorder("="), copy=True)


def array_bytes(raw: bytes | bytearray | memoryview | str) -> bytes:
    """The raw bytes of an encoded array: as msgpack carries them, or the
    base64 text JSON turns them into."""
    if isinstance(raw, str):
        return base64.b64decode(raw.encode("ascii"), validate=True)
    return bytes(raw)
