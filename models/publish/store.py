"""The model sets published to a Triton repository, kept beside the models::

    <repository>/_model_sets/<id>.json                the manifest, as sent
    <repository>/_model_sets/<id>.golden.safetensors  its golden rows (rollback re-checks them)
    <repository>/_model_sets/current                  the id of the set engines run
    <repository>/_model_sets/challenger               the id of the shadow set, if one runs
    <repository>/_model_sets/history.jsonl            one line per publish or rollback
    <repository>/_model_sets/.lock                    one publisher at a time

Every file is written to a temporary name and renamed, so a reader sees
the old or the new content, never a mix. (Triton's repository index lists
``_model_sets`` as a model without versions; in explicit mode it is never
loaded.)
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import msgspec

from models.triton_backend.repository import write_atomic
from signalml.contracts import ModelSetManifest, decoder, encode

FOLDER = "_model_sets"
POINTERS = ("current", "challenger")
MODEL_SET_ID = re.compile(r"^ms-[0-9]{14}-[0-9a-f]{8}$")
_decode = decoder(ModelSetManifest)


class ModelSetStore:
    """Manifests, the ``current`` pointer and the history of one repository."""

    def __init__(self, repository: str | os.PathLike[str]):
        self.folder = Path(repository) / FOLDER

    def _path(self, model_set: str, suffix: str = ".json") -> Path:
        if not MODEL_SET_ID.fullmatch(model_set or ""):
            raise ValueError(f"invalid model-set id {model_set!r} (expected ms-<yyyymmddHHMMSS>-<hash8>)")
        return self.folder / f"{model_set}{suffix}"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock for one publish or rollback at a time."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def write(self, manifest: ModelSetManifest, golden: Path | None = None) -> Path:
        """Store a manifest (and a copy of its golden file); returns its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(manifest.model_set)
        if golden is not None:
            copy = self._path(manifest.model_set, ".golden.safetensors")
            tmp = copy.with_name(f".{copy.name}.tmp")
            shutil.copyfile(golden, tmp)
            os.replace(tmp, copy)
        write_atomic(path, encode(manifest))
        return path

    def discard(self, model_set: str) -> None:
        """Delete a stored manifest that never became current."""
        if model_set in (self.current_id(), self.current_id("challenger")):
            raise ValueError(f"model set {model_set} is current or the challenger; it cannot be discarded")
        for suffix in (".json", ".golden.safetensors"):
            self._path(model_set, suffix).unlink(missing_ok=True)

    def read(self, model_set: str) -> ModelSetManifest:
        path = self._path(model_set)
        try:
            return _decode.decode(path.read_bytes())
        except FileNotFoundError:
            raise FileNotFoundError(f"model set {model_set} is not stored in {self.folder}") from None
        except msgspec.ValidationError as exc:
            raise ValueError(f"{path}: not a valid model-set manifest ({exc})") from None

    def ids(self) -> list[str]:
        """The ids of every stored manifest, oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("ms-*.json") if MODEL_SET_ID.fullmatch(p.stem))

    def golden(self, model_set: str) -> Path | None:
        path = self._path(model_set, ".golden.safetensors")
        return path if path.is_file() else None

    def current_id(self, pointer: str = "current") -> str | None:
        """The id ``pointer`` names: ``current`` (the champion) or ``challenger``."""
        if pointer not in POINTERS:
            raise ValueError(f"unknown pointer {pointer!r}; expected one of {list(POINTERS)}")
        try:
            text = (self.folder / pointer).read_text().strip()
        except FileNotFoundError:
            return None
        return text or None

    def current(self, pointer: str = "current") -> ModelSetManifest | None:
        model_set = self.current_id(pointer)
        return self.read(model_set) if model_set else None

    def set_current(self, model_set: str | None, action: str, pointer: str = "current") -> None:
        """Point ``pointer`` at ``model_set`` (None clears a challenger) and
        append to the history."""
        if pointer not in POINTERS or (model_set is None and pointer == "current"):
            raise ValueError(f"cannot set pointer {pointer!r} to {model_set!r}")
        if model_set is None:
            (self.folder / pointer).unlink(missing_ok=True)
        else:
            self._path(model_set)  # validates the id
            write_atomic(self.folder / pointer, f"{model_set}\n".encode())
        entry = {"model_set": model_set, "action": action, "at": int(time.time() * 1000)}
        if pointer != "current":
            entry["pointer"] = pointer
        line = json.dumps(entry)
        with open(self.folder / "history.jsonl", "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def history(self) -> list[dict]:
        try:
            lines = (self.folder / "history.jsonl").read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]
