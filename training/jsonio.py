"""JSON output: numpy scalars to Python, NaN/inf to null (strict JSON)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np


def to_jsonable(value):
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def write_json(path: str | os.PathLike[str], value) -> None:
    """Write ``value`` as strict, indented JSON, atomically."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(to_jsonable(value), indent=2, allow_nan=False))
    os.replace(temporary, path)
