"""Model names and file paths that may reach the Triton repository.

A model name becomes a folder of the repository and a URL path segment of
Triton's API, so it is restricted to ``^[A-Za-z0-9_-]{1,64}$``: no dots, no
separators, nothing a path or a URL could interpret. Files named by an
artifact must stay inside the artifact's folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MODEL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def validate_model_name(name: object) -> str:
    """``name`` unchanged when it is a valid Triton model name; else ValueError."""
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise ValueError(
            f"invalid model name {name!r}: use 1-64 letters, digits, '_' or '-' (pattern {MODEL_NAME.pattern})"
        )
    return name


def contained_path(base: str | os.PathLike[str], relative: object) -> Path:
    """``base / relative`` when ``relative`` is a plain relative path that
    stays inside ``base`` once resolved (symlinks included); else ValueError.

    Refuses absolute paths, ``..`` segments, empty names and NUL bytes, so an
    artifact's manifest cannot point publish at files outside its folder."""
    if not isinstance(relative, str) or not relative or "\0" in relative:
        raise ValueError(f"invalid file path {relative!r}")
    parts = Path(relative).parts
    if Path(relative).is_absolute() or ".." in parts or relative.startswith("~"):
        raise ValueError(f"file path {relative!r} must be relative and inside {base}")
    root = Path(base).resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise ValueError(f"file path {relative!r} leaves {base} (resolves to {target})")
    return target
