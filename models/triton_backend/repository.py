"""Files of a Triton model repository: version folders and configs, written
so that a Triton told to ``load_model`` never sees half of anything.

A version folder is built under a hidden temporary name in the model's
folder (same file system) and renamed into place; a config is written to a
temporary file and ``os.replace``-d, and only when its text changes (a new
modification time alone makes Triton reload every version of the model).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

from models.triton_backend.names import validate_model_name

FileSource = bytes | str | os.PathLike[str]  # bytes = content; a path = copy that file


def model_dir(repository: str | os.PathLike[str], name: str) -> Path:
    return Path(repository) / validate_model_name(name)


def versions(folder: Path) -> list[int]:
    """The numeric version folders of a model folder, ascending."""
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(folder: Path) -> int:
    """One more than the highest numeric version folder (1 when none)."""
    return max(versions(Path(folder)), default=0) + 1


def write_config(folder: Path, text: str) -> bool:
    """Write ``folder/config.pbtxt`` atomically when its text differs;
    returns whether it was written."""
    path = folder / "config.pbtxt"
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text.encode())
    return True


def write_version(
    folder: Path, version: int, files: Mapping[str, FileSource], *, overwrite: bool = False
) -> Path:
    """Create ``folder/<version>/`` holding ``files`` (file name -> bytes, or
    the path of a file to copy) all at once; returns the version folder.
    Versions are immutable unless ``overwrite``."""
    if int(version) < 1:
        raise ValueError(f"model version must be >= 1, got {version}")
    for file_name in files:
        if not file_name or "/" in file_name or file_name.startswith("."):
            raise ValueError(f"invalid file name {file_name!r} for a version folder")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / str(int(version))
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; versions are immutable (pass overwrite=True to replace)")
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=folder))
    try:
        for file_name, source in files.items():
            if isinstance(source, (bytes, bytearray, memoryview)):
                (staging / file_name).write_bytes(bytes(source))
            else:
                shutil.copyfile(source, staging / file_name)
        staging.chmod(0o755)
        if target.exists():
            old = folder / f".{version}.old"
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def remove_version(folder: Path, version: int) -> bool:
    """Delete ``folder/<version>/`` (renamed away first, so Triton never sees
    a half-deleted version). Returns whether it existed."""
    target = folder / str(int(version))
    if not target.exists():
        return False
    doomed = Path(tempfile.mkdtemp(prefix=f".{version}.removed.", dir=folder))
    target.rename(doomed / "v")
    shutil.rmtree(doomed, ignore_errors=True)
    return True


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
