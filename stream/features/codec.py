"""numpy arrays as plain data: dtype, shape and base64 of little-endian bytes.

Plain data (dicts, lists, numbers, strings) survives JSON and msgspec, and
bytes survive bit for bit, so a restored state continues exactly.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def encode_array(array: np.ndarray) -> dict[str, Any]:
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {
        "dtype": little.dtype.str,
        "shape": list(little.shape),
        "base64": base64.b64encode(little.tobytes()).decode("ascii"),
    }


def decode_array(data: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(data["dtype"])
    if dtype.kind not in "biuf":
        raise ValueError(f"refusing to decode an array of dtype {dtype.str!r}")
    raw = base64.b64decode(data["base64"].encode("ascii"), validate=True)
    array = np.frombuffer(raw, dtype=dtype).reshape(tuple(data["shape"]))
    return array.astype(dtype.newbyteorder("="), copy=True)
