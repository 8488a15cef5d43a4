"""JSON through one msgspec encoder: HTTP bodies, metrics and reports,
member files.

numpy scalars and arrays become numbers and lists; a float that is not
finite becomes null, so the output is always strict JSON; any other object
msgspec does not know becomes its ``str()``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import numpy as np


def _builtin(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


_encoder = msgspec.json.Encoder(enc_hook=_builtin)
_sorted_encoder = msgspec.json.Encoder(enc_hook=_builtin, order="sorted")


def jsonable(value: Any) -> Any:
    """``value`` as the plain data its JSON reads back as (dicts, lists,
    str keys, None for a float that is not finite)."""
    return msgspec.json.decode(_encoder.encode(value))


def encode_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON bytes of ``value``; ``sort_keys`` orders every object's keys."""
    if sort_keys:  # msgspec sorts str keys only: other keys become strings first
        return _sorted_encoder.encode(jsonable(value))
    return _encoder.encode(value)


def write_json(path: str | os.PathLike[str], value: Any, *, sort_keys: bool = False) -> None:
    """Write ``value`` as indented JSON with a final newline, atomically
    (a reader sees the old file or the whole new one)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_bytes(msgspec.json.format(encode_json(value, sort_keys=sort_keys), indent=2) + b"\n")
    os.replace(temporary, path)


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON in ``path``; raises OSError or ``msgspec.DecodeError`` (a ValueError)."""
    return msgspec.json.decode(Path(path).read_bytes())
